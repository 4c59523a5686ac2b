//! The search benchmark: `!sb search`'s store query over a large seeded corpus, on SQLite and
//! PostgreSQL, and what indexing costs the inbox.
//!
//! `cargo bench --bench search` seeds a store with `SWITCHBOARD_BENCH_SEARCH_DOCS` messages
//! (default 1,000,000) in 20,000 conversations spread over four teams and none: sentences drawn
//! from Russian, Ukrainian, Indonesian and English word lists (with their word forms), some with
//! an invoice number, a link or a file. Then it runs `SWITCHBOARD_BENCH_SEARCH_QUERIES` searches
//! (default 300) of the kinds operators type — one word in another form than stored, two words,
//! a partial word, a filter, an operator's scope (their team, unassigned, owned) and an admin's
//! — each reading the first batch `!sb search` reads (50 rows), newest first and best first, and
//! reports p50 / p95 / max. Indexing cost: `inbox_insert` of 4,000 messages (one transaction
//! each, as relay stores them) on the seeded store, half with their search rows and half with a
//! bench-only trigger dropping them, in alternating rounds, and the analyzer's work for the same
//! messages measured alone: the index's share of the inbox write (see [`indexing_cost`]).
//!
//! `SWITCHBOARD_BENCH_SEARCH_BACKENDS` = `sqlite,postgres` (default both; PostgreSQL from the
//! test rig's server). Results: `bench/results/search-<backends>-<docs>.json`.

#[path = "../tests/rig/mod.rs"]
#[allow(dead_code, unused_imports)]
mod rig;

use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard::search::analyzer;
use switchboard::store::search::{Kind, Media, NewDoc, Query, Scope};
use switchboard::store::Store;
use switchboard_channel::{ContactProfile, Content, ConversationKey, Inbound, InboundEvent};

const CONVERSATIONS: i64 = 20_000;
const TEAMS: [Option<&str>; 5] = [Some("a"), Some("b"), Some("c"), Some("d"), None];

/// Word families: the forms a message may use.
const FAMILIES: &[&[&str]] = &[
    &["счёт", "счета", "счетов", "счётом", "счету"],
    &["оплата", "оплаты", "оплату", "оплатили", "оплачен"],
    &["доставка", "доставки", "доставку", "доставили"],
    &["заказ", "заказа", "заказы", "заказов", "заказом"],
    &["возврат", "возврата", "вернуть", "возвраты"],
    &["рахунок", "рахунку", "рахунки", "рахунків"],
    &["замовлення", "замовленням", "замовлень"],
    &["доставка", "доставку", "доставці"],
    &["bayar", "pembayaran", "dibayar", "membayar"],
    &["kirim", "kiriman", "dikirim", "terkirim"],
    &["pesanan", "pesan", "memesan"],
    &["invoice", "invoices", "invoiced"],
    &["refund", "refunds", "refunded"],
    &["delivery", "deliveries", "delivered"],
    &["order", "orders", "ordered"],
];

const FILLER: &[&str] = &[
    "пожалуйста",
    "когда",
    "будет",
    "спасибо",
    "здравствуйте",
    "сегодня",
    "завтра",
    "будь",
    "ласка",
    "коли",
    "дякую",
    "сьогодні",
    "tolong",
    "kapan",
    "terima",
    "kasih",
    "hari",
    "ini",
    "please",
    "when",
    "thanks",
    "today",
    "tomorrow",
    "the",
    "and",
    "for",
    "my",
    "your",
    "за",
    "март",
    "квітень",
    "mei",
    "april",
    "номер",
    "nomor",
    "number",
    "ещё",
    "уже",
    "вже",
    "sudah",
];

fn setting(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(format!("SWITCHBOARD_BENCH_{name}")) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("SWITCHBOARD_BENCH_{name}={v}")),
        Err(_) => Ok(default),
    }
}

fn sentence(rng: &mut StdRng) -> (String, Option<Media>) {
    let mut words: Vec<String> = Vec::new();
    for _ in 0..rng.random_range(4..14) {
        if rng.random_bool(0.3) {
            let f = FAMILIES[rng.random_range(0..FAMILIES.len())];
            words.push(f[rng.random_range(0..f.len())].to_string());
        } else {
            words.push(FILLER[rng.random_range(0..FILLER.len())].to_string());
        }
    }
    if rng.random_bool(0.1) {
        words.push(format!("INV-{}", rng.random_range(10_000..99_999)));
    }
    if rng.random_bool(0.05) {
        words.push(format!(
            "https://shop.example/o/{}",
            rng.random_range(1..1_000_000)
        ));
    }
    let media = if rng.random_bool(0.05) {
        words = vec![format!("scan-{}.pdf", rng.random_range(1..100_000))];
        Some(Media::File)
    } else {
        None
    };
    (words.join(" "), media)
}

async fn seed(store: &Store, docs: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(18);
    let mut tx = store.pool().begin().await?;
    for c in 0..CONVERSATIONS {
        sqlx::query(
            "INSERT INTO conversations (id, channel, account, chat, contact_id, room_id, created_at)
             VALUES ($1, 'telegram', 'bot', $2, $2, $3, 0)",
        )
        .bind(c + 1)
        .bind(format!("chat-{c}"))
        .bind(format!("!room{c}:localhost"))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO contacts (channel, contact_id, ghost_user_id, display_name)
             VALUES ('telegram', $1, $2, $3)",
        )
        .bind(format!("chat-{c}"))
        .bind(format!("@sb_telegram_{c}:localhost"))
        .bind(format!("Customer {c}"))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO routing (conversation_id, team, owner, state, updated_at)
             VALUES ($1, $2, $3, 'open', 0)",
        )
        .bind(c + 1)
        .bind(TEAMS[(c % 5) as usize])
        .bind((c % 50 == 0).then_some("@op1:localhost"))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let base_ts = 1_700_000_000_000i64;
    let mut batch = Vec::with_capacity(5_000);
    for i in 0..docs {
        let (body, media) = sentence(&mut rng);
        batch.push(NewDoc {
            conversation_id: rng.random_range(1..=CONVERSATIONS),
            remote: Some((format!("r{i}"), 0)),
            event_id: None,
            kind: if rng.random_bool(0.6) {
                Kind::Customer
            } else {
                Kind::Operator
            },
            sender: "someone".into(),
            media,
            ts: base_ts + i as i64 * 30_000,
            body,
        });
        if batch.len() == 5_000 {
            store.index_docs(&batch).await?;
            batch.clear();
            if (i + 1) % 100_000 == 0 {
                eprintln!("  seeded {} docs ({:.0?})", i + 1, started.elapsed());
            }
        }
    }
    store.index_docs(&batch).await?;
    Ok(started.elapsed())
}

fn queries() -> Vec<(&'static str, Query, bool)> {
    let q = |words: &str| Query {
        words: analyzer::query_words(words),
        ..Default::default()
    };
    vec![
        ("one word, another form", q("счетов"), false),
        ("one word, Ukrainian", q("рахунок"), false),
        ("one word, Indonesian", q("bayar"), false),
        ("two words", q("invoice refund"), false),
        ("partial word", q("доставк"), false),
        ("rare number", q("INV-12345"), false),
        (
            "word + has:file",
            Query {
                media: Some(Media::File),
                ..q("scan")
            },
            false,
        ),
        (
            "word + team:b",
            Query {
                team: Some("b".into()),
                ..q("заказ")
            },
            false,
        ),
        (
            "best first",
            Query {
                best: true,
                ..q("оплата")
            },
            false,
        ),
        ("operator's scope", q("pesanan"), true),
        ("operator's scope, two words", q("order delivered"), true),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn measure(store: &Store, runs: usize) -> anyhow::Result<serde_json::Value> {
    let operator = Scope::Of {
        user: "@op1:localhost".into(),
        teams: vec!["a".into()],
    };
    let qs = queries();
    let mut all = Vec::new();
    let mut per_kind = serde_json::Map::new();
    for (name, query, scoped) in &qs {
        let scope = if *scoped { &operator } else { &Scope::All };
        // Warm the caches once, as a running bridge has them.
        store.search(query, scope, 0, 50).await?;
        let mut times = Vec::new();
        for _ in 0..(runs / qs.len()).max(3) {
            let t = Instant::now();
            let hits = store.search(query, scope, 0, 50).await?;
            times.push(t.elapsed());
            std::hint::black_box(hits);
        }
        times.sort();
        per_kind.insert(
            name.to_string(),
            serde_json::json!({
                "p50_ms": percentile(&times, 0.5).as_secs_f64() * 1e3,
                "p95_ms": percentile(&times, 0.95).as_secs_f64() * 1e3,
            }),
        );
        all.extend(times);
    }
    all.sort();
    Ok(serde_json::json!({
        "queries": all.len(),
        "p50_ms": percentile(&all, 0.5).as_secs_f64() * 1e3,
        "p95_ms": percentile(&all, 0.95).as_secs_f64() * 1e3,
        "max_ms": all.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        "by_kind": per_kind,
    }))
}

/// Inbox writes per second with their search rows and without them, and the analyzer's share.
///
/// "Without" is the same `inbox_insert` while a bench-only trigger drops each search row before
/// it is written (SQLite `RAISE(IGNORE)`, PostgreSQL a `BEFORE INSERT` trigger returning NULL):
/// no row, no FTS5 / GIN entry. The analyzer still runs in both (it builds the row's terms
/// before the insert), so the index's cost is the difference plus the analyzer's time measured
/// alone. The two are timed in alternating rounds so that a machine busy with other work
/// slows both alike.
async fn indexing_cost(store: &Store) -> anyhow::Result<serde_json::Value> {
    let mut rng = StdRng::seed_from_u64(7);
    let rounds = 8;
    let per_round = 250;
    let n = 2 * rounds * per_round;
    let messages: Vec<Inbound> = (0..n)
        .map(|i| {
            let (text, _) = sentence(&mut rng);
            Inbound {
                conversation: ConversationKey {
                    account: "bot".into(),
                    chat: format!("cost-{}", i % 200),
                },
                sender: ContactProfile {
                    id: format!("cost-{}", i % 200),
                    ..Default::default()
                },
                timestamp_ms: 1_700_000_000_000,
                dedup_key: format!("cost-{i}"),
                event: InboundEvent::Message {
                    remote_id: format!("cost-{i}"),
                    content: Content {
                        text,
                        ..Default::default()
                    },
                    reply_to: None,
                },
                addressed_to: None,
                group: None,
            }
        })
        .collect();
    let (off, on): (&[&str], &[&str]) = if store.is_sqlite() {
        (
            &["CREATE TRIGGER bench_index_off BEFORE INSERT ON search_docs BEGIN SELECT RAISE(IGNORE); END"],
            &["DROP TRIGGER bench_index_off"],
        )
    } else {
        (
            &[
                "CREATE OR REPLACE FUNCTION bench_index_off() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
                "CREATE TRIGGER bench_index_off BEFORE INSERT ON search_docs FOR EACH ROW EXECUTE FUNCTION bench_index_off()",
            ],
            &["DROP TRIGGER bench_index_off ON search_docs"],
        )
    };
    let count = || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM search_docs")
            .fetch_one(store.pool())
            .await?;
        anyhow::Ok(n)
    };
    let rows_before = count().await?;
    let (mut with_index, mut without_index) = (Duration::ZERO, Duration::ZERO);
    for (round, chunk) in messages.chunks(per_round).enumerate() {
        let indexed = round % 2 == 0;
        if !indexed {
            for sql in off {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(store.pool())
                    .await?;
            }
        }
        let t = Instant::now();
        for m in chunk {
            store.inbox_insert("telegram", "@g:localhost", m).await?;
        }
        let took = t.elapsed();
        if indexed {
            with_index += took;
        } else {
            without_index += took;
            for sql in on {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(store.pool())
                    .await?;
            }
        }
    }
    // The trigger did its work: only the indexed rounds wrote search rows.
    let written = count().await? - rows_before;
    anyhow::ensure!(
        written == (n / 2) as i64,
        "{written} search rows written for {} indexed messages",
        n / 2
    );
    let t = Instant::now();
    for m in &messages {
        if let InboundEvent::Message { content, .. } = &m.event {
            std::hint::black_box(analyzer::index_terms(&content.text));
        }
    }
    let analyzer_per_message = t.elapsed().as_secs_f64() / n as f64;
    let half = (n / 2) as f64;
    let with_per_s = half / with_index.as_secs_f64();
    let without_per_s = half / without_index.as_secs_f64();
    // The index's time per message over an indexed message's whole time: the share of inbox
    // throughput the index costs (writing without it would be that much faster).
    let index_per_message =
        (with_index.as_secs_f64() - without_index.as_secs_f64()) / half + analyzer_per_message;
    Ok(serde_json::json!({
        "messages": n,
        "inbox_insert_per_s_with_index": with_per_s,
        "inbox_insert_per_s_without_index": without_per_s,
        "analyzer_us_per_message": analyzer_per_message * 1e6,
        "index_us_per_message": index_per_message * 1e6,
        "index_share_of_inbox_insert": index_per_message * with_per_s,
        "analyzer_share_of_inbox_insert": analyzer_per_message * with_per_s,
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let docs = setting("SEARCH_DOCS", 1_000_000)?;
    let runs = setting("SEARCH_QUERIES", 300)?;
    let backends = std::env::var("SWITCHBOARD_BENCH_SEARCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into());
    let dir = tempfile::tempdir()?;
    let mut results = serde_json::Map::new();
    for backend in backends.split(',').map(str::trim) {
        let url = match backend {
            "sqlite" => format!("sqlite://{}", dir.path().join("search.db").display()),
            "postgres" => rig::postgres::fresh_database_url().await?,
            other => anyhow::bail!("unknown backend {other}"),
        };
        // SWITCHBOARD_BENCH_SEARCH_SEED_DB (SQLite only): a seeded store kept there is
        // copied instead of seeding again (and one is kept there after seeding), so builds
        // can be compared on the same store; a build whose index needs more (the term list)
        // rebuilds it first, timed as `reindex_s`.
        let kept = std::env::var("SWITCHBOARD_BENCH_SEARCH_SEED_DB")
            .ok()
            .filter(|_| backend == "sqlite")
            .map(std::path::PathBuf::from);
        let reuse = kept.as_ref().is_some_and(|k| k.exists());
        if let (true, Some(k)) = (reuse, &kept) {
            std::fs::copy(k, dir.path().join("search.db"))?;
        }
        eprintln!("{backend}: seeding {docs} messages…");
        let store = Store::connect(&url, 4).await?;
        let seeded = if reuse {
            Duration::ZERO
        } else {
            seed(&store, docs).await?
        };
        if let (false, Some(k)) = (reuse, &kept) {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(store.pool())
                .await?;
            std::fs::copy(dir.path().join("search.db"), k)?;
        }
        let t = Instant::now();
        let rewritten = switchboard::search::reindex::run(&store, false, |_| {}).await?;
        let reindex_s = t.elapsed().as_secs_f64();
        eprintln!("{backend}: index brought up to date in {reindex_s:.1}s ({rewritten} rows)");
        if !store.is_sqlite() {
            sqlx::query("ANALYZE").execute(store.pool()).await?;
        }
        eprintln!("{backend}: seeded in {seeded:.1?}; searching…");
        let search = measure(&store, runs).await?;
        let cost = indexing_cost(&store).await?;
        eprintln!("{backend}: {search:#}\n{cost:#}");
        results.insert(
            backend.to_string(),
            serde_json::json!({
                "docs": docs,
                "seed_s": seeded.as_secs_f64(),
                "reindex_s": reindex_s,
                "search": search,
                "indexing": cost,
            }),
        );
    }
    let out = serde_json::Value::Object(results);
    let name = std::env::var("SWITCHBOARD_BENCH_SEARCH_OUT")
        .unwrap_or_else(|_| format!("search-{}-{docs}.json", backends.replace(',', "-")));
    let path = rig::repo_root().join("bench/results").join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
