//! Search over all history, on both stores: the index written with what it indexes, the
//! `switchboard search reindex` command, and `!sb search` as operators use it through a real
//! Matrix client on a real Synapse, seeing only what they may see.

#[macro_use]
mod rig;

use std::process::Command;

use anyhow::{ensure, Context};
use rig::Backend;
use switchboard::search::analyzer;
use switchboard::store::search::{Query, Scope};
use switchboard::store::Store;
use switchboard_channel::{ContactProfile, Content, ConversationKey, Inbound, InboundEvent};

async fn store_url(backend: Backend, dir: &tempfile::TempDir) -> anyhow::Result<String> {
    Ok(match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("store.db").display()),
        Backend::Postgres => rig::postgres::fresh_database_url().await?,
    })
}

fn message(chat: &str, remote_id: &str, text: &str) -> Inbound {
    Inbound {
        conversation: ConversationKey {
            account: "site".into(),
            chat: chat.into(),
        },
        sender: ContactProfile {
            id: format!("visitor-{chat}"),
            display_name: Some(format!("Customer {chat}")),
            ..Default::default()
        },
        timestamp_ms: 1_764_000_000_000,
        dedup_key: remote_id.into(),
        event: InboundEvent::Message {
            remote_id: remote_id.into(),
            content: Content {
                text: text.into(),
                ..Default::default()
            },
            reply_to: None,
        },
        addressed_to: None,
    }
}

async fn found(store: &Store, words: &str) -> anyhow::Result<Vec<String>> {
    let query = Query {
        words: analyzer::query_words(words),
        ..Default::default()
    };
    let mut bodies: Vec<String> = store
        .search(&query, &Scope::All, 0, 100)
        .await?
        .into_iter()
        .map(|h| h.body)
        .collect();
    bodies.sort();
    Ok(bodies)
}

/// Every language's word forms find each other through the store's own full-text index (FTS5
/// on SQLite, GIN over tsvector on PostgreSQL), and a rebuild with `switchboard search reindex`
/// after the index was damaged finds them again.
async fn the_index_finds_word_forms_and_is_rebuilt_by_the_command(
    backend: Backend,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = store_url(backend, &dir).await?;
    let store = Store::connect(&url, 2).await?;
    let texts = [
        ("ru", "Пришлите счёт за март"),
        ("ru2", "Оплатили два счета, ждём акт"),
        ("uk", "Надішліть рахунок, будь ласка"),
        ("id", "Pembayaran sudah kami terima"),
        ("en", "The invoices were paid yesterday"),
    ];
    for (i, (chat, text)) in texts.iter().enumerate() {
        store
            .inbox_insert(
                "webchat",
                "@sb_webchat_x:localhost",
                &message(chat, &format!("m{i}"), text),
            )
            .await?;
    }
    let cases: [(&str, &[&str]); 6] = [
        (
            "счетов",
            &["Оплатили два счета, ждём акт", "Пришлите счёт за март"],
        ),
        ("рахунку", &["Надішліть рахунок, будь ласка"]),
        ("bayar", &["Pembayaran sudah kami terima"]),
        ("invoiced paid", &["The invoices were paid yesterday"]),
        ("ждем", &["Оплатили два счета, ждём акт"]),
        ("пришл", &["Пришлите счёт за март"]),
    ];
    for (q, want) in cases {
        let got = found(&store, q).await?;
        ensure!(
            got == want,
            "{backend:?}: {q:?} found {got:?}, want {want:?}"
        );
    }
    ensure!(found(&store, "доставка").await?.is_empty());

    // Damage: every row's terms replaced, as an older analyzer would have left them.
    sqlx::query("UPDATE search_docs SET terms = 'stale', analyzer = 0")
        .execute(store.pool())
        .await?;
    ensure!(
        found(&store, "счетов").await?.is_empty(),
        "damage did not take"
    );
    store.pool().close().await;
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "homeserver: {{url: 'http://127.0.0.1:9', domain: localhost}}\n\
             appservice: {{url: 'http://127.0.0.1:9'}}\ndatabase: {{url: '{url}'}}\n"
        ),
    )?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SWITCHBOARD_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["search", "reindex", "-c"])
        .arg(&cfg)
        .output()
        .context("running switchboard search reindex")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains("5 rows rewritten"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::connect(&url, 2).await?;
    ensure!(
        found(&store, "счетов").await?.len() == 2,
        "{backend:?}: not found after the rebuild"
    );
    Ok(())
}

on_both_stores!(the_index_finds_word_forms_and_is_rebuilt_by_the_command);
