//! Rebuilding the search index: rows whose terms an older analyzer wrote are rewritten in small
//! batches, each its own transaction, so the work can stop anywhere (a crash, a restart) and go
//! on from there, while relay goes on beside it. `switchboard search reindex` runs it in the
//! foreground (`--all`: every row, as after a suspected damage); the bridge runs it in the
//! background at start when the analyzer changed ([`super::analyzer::VERSION`]).
//!
//! The same work lists the index's terms for prefix lookups (`search_terms`, which a store
//! indexed by an older build lacks; [`crate::store::search`]), in batches (of terms on SQLite,
//! of rows on PostgreSQL), on from where the last one stopped: until it is complete, searches
//! use the index's own (slower) prefix queries, so results never depend on how far it got.

use std::time::Duration;

use crate::store::{Store, StoreError};

/// Rows rewritten per transaction.
pub const BATCH: i64 = 500;

/// Rewrite every stale row (every row with `all`); report progress through `progress`
/// (rows done so far). Returns how many rows were rewritten.
pub async fn run(
    store: &Store,
    all: bool,
    mut progress: impl FnMut(u64),
) -> Result<u64, StoreError> {
    if all {
        store.search_mark_all_stale().await?;
    }
    while store.search_terms_backfill_batch(TERMS_BATCH).await? > 0 {}
    let mut done = 0;
    loop {
        let n = store.search_reindex_batch(BATCH).await?;
        if n == 0 {
            return Ok(done);
        }
        done += n;
        progress(done);
    }
}

/// Listed per transaction: index terms on SQLite (each reads that term's entries in the
/// index), rows on PostgreSQL (each row's tsvector).
pub const TERMS_BATCH: i64 = 2_000;

/// The bridge's background rebuild: batches with a pause between them, so relay keeps most of
/// the database's time. A store error waits and tries again.
pub async fn background(store: Store) {
    loop {
        match store.search_terms_backfill_batch(TERMS_BATCH).await {
            Ok(0) => break,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => {
                tracing::warn!(error = %e, "search term listing failed; trying again");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
    let mut done = 0u64;
    loop {
        match store.search_reindex_batch(BATCH).await {
            Ok(0) => {
                if done > 0 {
                    tracing::info!(rows = done, "search index rebuilt for the current analyzer");
                }
                return;
            }
            Ok(n) => {
                done += n;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "search reindex batch failed; trying again");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}
