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
        group: None,
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

/// `sort:best` puts the closest match above newer, looser ones, and ranks among the newest
/// matches the asker's filters leave (`BEST_CANDIDATES` of them): under more newer matches
/// than that, an old closest match drops off the first page, and a filter that leaves it
/// among the newest (its channel) finds it again.
async fn best_first_ranks_the_closest_match_among_what_the_filters_leave(
    backend: Backend,
) -> anyhow::Result<()> {
    use switchboard::store::search::{Kind, NewDoc, BEST_CANDIDATES};
    let dir = tempfile::tempdir()?;
    let store = Store::connect(&store_url(backend, &dir).await?, 2).await?;
    let texts = [
        ("tg", "Счёт за март: где счёт? Пришлите счёт"),
        ("web", "Добрый день, у нас вопрос по доставке, по оплате и ещё, кстати, счёт за апрель не пришёл вовремя"),
        ("web", "Здравствуйте, подскажите про сроки доставки и упаковку, а счёт пришлём позже отдельным письмом"),
    ];
    for (i, (chat, text)) in texts.iter().enumerate() {
        let channel = if *chat == "tg" { "telegram" } else { "webchat" };
        store
            .inbox_insert(
                channel,
                "@sb_x:localhost",
                &message(chat, &format!("b{i}"), text),
            )
            .await?;
    }
    let search = |best: bool, channel: Option<&str>| {
        let query = Query {
            words: analyzer::query_words("счёт"),
            best,
            channel: channel.map(str::to_owned),
            ..Default::default()
        };
        let store = &store;
        async move {
            let hits = store.search(&query, &Scope::All, 0, 10).await?;
            anyhow::Ok(hits.into_iter().map(|h| h.body).collect::<Vec<_>>())
        }
    };
    let newest = search(false, None).await?;
    ensure!(
        newest.first().map(String::as_str) == Some(texts[2].1),
        "newest first: {newest:?}"
    );
    let best = search(true, None).await?;
    ensure!(
        best.first().map(String::as_str) == Some(texts[0].1),
        "best first: {best:?}"
    );
    ensure!(best.len() == 3, "every match is listed: {best:?}");

    // More newer web chat matches than the ranking reads.
    let web = store
        .search(
            &Query {
                words: analyzer::query_words("доставки"),
                ..Default::default()
            },
            &Scope::All,
            0,
            1,
        )
        .await?;
    let web_conversation = web
        .first()
        .context("the web chat conversation")?
        .conversation_id;
    let filler: Vec<NewDoc> = (0..BEST_CANDIDATES)
        .map(|i| NewDoc {
            conversation_id: web_conversation,
            remote: None,
            event_id: Some(format!("$filler{i}")),
            kind: Kind::Operator,
            sender: "@bob:localhost".into(),
            media: None,
            ts: 1_764_000_100_000 + i,
            body: format!("Счёт номер {i} выставлен"),
        })
        .collect();
    store.index_docs(&filler).await?;
    // The trade (README, "Search"): ranking reads only the newest matches, so an old best
    // match under `BEST_CANDIDATES` newer ones is no longer on the first page…
    let all = search(true, None).await?;
    ensure!(all.len() == 10, "a full page: {all:?}");
    ensure!(
        !all.iter().any(|b| b == texts[0].1),
        "the old closest match is past the ranked window: {all:?}"
    );
    // …until a filter leaves it among the newest.
    let telegram = search(true, Some("telegram")).await?;
    ensure!(
        telegram == [texts[0].1],
        "the one Telegram match, best first: {telegram:?}"
    );
    Ok(())
}

on_both_stores!(best_first_ranks_the_closest_match_among_what_the_filters_leave);

fn with_teams(backend: Backend, teams: serde_json::Value) -> rig::BridgeOptions {
    let teams: serde_yaml::Value = serde_yaml::to_value(&teams).unwrap_or_default();
    rig::BridgeOptions::default()
        .backend(backend)
        .edit_config(move |c| {
            if let Some(map) = c.as_mapping_mut() {
                map.insert("teams".into(), teams.clone());
            }
        })
}

fn link(room: &str, event: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    format!(
        "https://matrix.to/#/{}/{}?via=localhost",
        utf8_percent_encode(room, NON_ALPHANUMERIC),
        utf8_percent_encode(event, NON_ALPHANUMERIC)
    )
}

/// Two conversations, one in team A and one moved to team B. Bob (team A, an operator) asks
/// in his portal: the room gets a one-line pointer, his direct chat with the bot the results —
/// team A's message, with the matched word marked and a link to the exact event, and never
/// team B's. Alice (admin), asking with a bare `search` in her own DM with the bot, finds both;
/// a phrase and the `has:` filter narrow it; `search more` says when there is nothing more.
async fn operators_find_only_what_they_may_see(backend: Backend) -> anyhow::Result<()> {
    let env = rig::TestEnv::start(with_teams(
        backend,
        serde_json::json!({
            "team-a": {"members": ["@alice:localhost", "@bob:localhost"], "rules": [{"channel": "webchat"}]},
            "team-b": {"members": ["@alice:localhost"]},
        }),
    ))
    .await?;
    let xenia = env.visitor("Xenia Ardent", "xenia@example.com").await?;
    xenia.send("Пришлите, пожалуйста, счёт за март").await?;
    let room_x = env.bob.wait_for_invite("Xenia Ardent").await?;
    let event_x = env
        .bob
        .wait_for_text(&room_x, "счёт за март")
        .await?
        .event_id;
    let yuri = env.visitor("Yuri Bellamy", "yuri@example.com").await?;
    yuri.send("Нужны два счета за апрель, срочно").await?;
    let room_y = env.alice.wait_for_invite("Yuri Bellamy").await?;
    env.alice.wait_for_text(&room_y, "счета за апрель").await?;
    let moved = rig::command(&env.alice, &room_y, "!sb transfer team-b").await?;
    ensure!(moved.contains("team-b"), "{moved}");

    // Bob asks in the portal of Xenia's conversation.
    let pointer = rig::command(&env.bob, &room_x, "!sb search счетов").await?;
    ensure!(
        pointer.contains("1 result") && pointer.contains("direct chat"),
        "the room's pointer: {pointer}"
    );
    ensure!(
        !pointer.contains("март") && !pointer.contains("апрел"),
        "results leaked into the room: {pointer}"
    );
    let dm = env.bob.wait_for_invite("Switchboard direct chat").await?;
    let results = env
        .bob
        .wait_for_text(&dm, "results 1–1")
        .await
        .with_context(|| format!("messages there: {:?}", env.bob.messages(&dm)))?;
    ensure!(
        results.body.contains("**счёт** за март") && results.body.contains("Xenia Ardent"),
        "{}",
        results.body
    );
    ensure!(
        results.body.contains(&link(&room_x, &event_x)),
        "no permalink to {event_x} in {}",
        results.body
    );
    let html = results.formatted_body.clone().unwrap_or_default();
    ensure!(html.contains("<b>счёт</b>"), "{html}");
    ensure!(
        !results.body.contains("апрел") && !results.body.contains("Yuri"),
        "team B's conversation shown to team A's operator: {}",
        results.body
    );
    let more = rig::command(&env.bob, &room_x, "!sb search more").await?;
    ensure!(
        more.contains("No results") || more.contains("direct chat"),
        "{more}"
    );
    env.bob.wait_for_text(&dm, "No more results").await?;

    // Alice, an admin, asks bare in her own direct chat with the bot.
    let alice_dm = env
        .alice
        .create_room("alice and the bot", &[&env.bot_user_id()])
        .await?;
    rig::poll_until(
        "the bot joined alice's DM",
        std::time::Duration::from_secs(30),
        || async {
            let m = env.alice.memberships(&alice_dm).await?;
            Ok((rig::membership(&m, &env.bot_user_id()).as_deref() == Some("join")).then_some(()))
        },
    )
    .await?;
    let all = rig::command(&env.alice, &alice_dm, "search счетов").await?;
    ensure!(
        all.contains("results 1–2") && all.contains("Xenia") && all.contains("Yuri"),
        "{all}"
    );
    let phrase = rig::command(&env.alice, &alice_dm, "search \"счета за апрель\"").await?;
    ensure!(
        phrase.contains("results 1–1") && phrase.contains("Yuri") && !phrase.contains("Xenia"),
        "{phrase}"
    );
    let files = rig::command(&env.alice, &alice_dm, "search счетов has:file").await?;
    ensure!(files.contains("No results"), "{files}");
    // A private note is found too, as a note.
    rig::command(&env.alice, &room_y, "!sb note клиент оплатил наличными").await?;
    let note = rig::command(&env.alice, &alice_dm, "search наличные").await?;
    ensure!(
        note.contains("note by @alice:localhost") && note.contains("**наличными**"),
        "{note}"
    );
    // An operator's answer is found by its words; edited, by its new words only; deleted, not
    // at all (the index follows what the customer was sent).
    let answer = env
        .alice
        .send_text(&room_y, "Оплату ждём до пятницы")
        .await?;
    env.alice
        .wait_for_send_status(&room_y, &answer, "SUCCESS")
        .await?;
    let sent = rig::command(&env.alice, &alice_dm, "search пятница").await?;
    ensure!(
        sent.contains("results 1–1") && sent.contains("**пятницы**"),
        "{sent}"
    );
    let edit = env
        .alice
        .edit(&room_y, &answer, "Оплату ждём до понедельника")
        .await?;
    env.alice.wait_for_any_send_status(&room_y, &edit).await?;
    let edited = rig::command(&env.alice, &alice_dm, "search понедельник").await?;
    ensure!(
        edited.contains("results 1–1") && edited.contains("**понедельника**"),
        "{edited}"
    );
    let old = rig::command(&env.alice, &alice_dm, "search пятница").await?;
    ensure!(old.contains("No results"), "the edited-away words: {old}");
    env.alice.redact(&room_y, &answer, None).await?;
    rig::poll_until(
        "the deleted answer leaves the index",
        std::time::Duration::from_secs(30),
        || async {
            let r = rig::command(&env.alice, &alice_dm, "search понедельник").await?;
            Ok(r.contains("No results").then_some(()))
        },
    )
    .await?;
    Ok(())
}

on_both_stores!(operators_find_only_what_they_may_see);

async fn listed_terms(store: &Store) -> anyhow::Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT term FROM search_terms ORDER BY term")
            .fetch_all(store.pool())
            .await?,
    )
}

fn words(text: &str) -> Vec<analyzer::QueryWord> {
    analyzer::query_words(text)
}

/// Partial words are looked up as the terms they begin, from a term list every write (an
/// inbound message, its edit, a note) adds to in its own transaction: a word indexed a moment
/// ago is found by its start at once, and a start shared by more terms than a lookup lists
/// (`MAX_PREFIX_TERMS`, 64) still finds them all, through the index's own prefix query.
async fn partial_words_find_what_every_write_listed(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::connect(&store_url(backend, &dir).await?, 2).await?;
    ensure!(
        store.search_terms_complete(),
        "a new store's term list is complete"
    );
    let inbox = |chat: &str, id: &str, text: &str| {
        let m = message(chat, id, text);
        let store = &store;
        async move { store.inbox_insert("webchat", "@sb_x:localhost", &m).await }
    };
    inbox("a", "m1", "Pembayaran diterima").await?;
    let terms = listed_terms(&store).await?;
    for t in ["pembayaran", "bayar", "diterima", "terima"] {
        ensure!(terms.iter().any(|x| x == t), "{t} not in {terms:?}");
    }
    ensure!(found(&store, "pembay").await? == ["Pembayaran diterima"]);
    ensure!(found(&store, "diteri pemb").await? == ["Pembayaran diterima"]);
    // Looked up in the list, not left to the index's prefix query.
    let begun = store.search_prefix_terms(&words("pembay")).await?;
    ensure!(
        begun == [Some(vec!["pembayaran".to_string()])],
        "{backend:?}: {begun:?}"
    );

    let mut edit = message("a", "m1-edit", "");
    edit.event = InboundEvent::Edit {
        remote_id: "m1".into(),
        content: Content {
            text: "Pengiriman besok".into(),
            ..Default::default()
        },
    };
    store
        .inbox_insert("webchat", "@sb_x:localhost", &edit)
        .await?;
    ensure!(found(&store, "pengir").await? == ["Pengiriman besok"]);
    ensure!(found(&store, "pembay").await?.is_empty());
    let conversation: i64 = sqlx::query_scalar("SELECT conversation_id FROM search_docs")
        .fetch_one(store.pool())
        .await?;
    store
        .index_note(
            conversation,
            "$note1",
            "@alice:localhost",
            "Kurir terlambat",
        )
        .await?;
    ensure!(found(&store, "terlam").await? == ["Kurir terlambat"]);

    // More terms begin with "123" than a lookup lists: the index's prefix query finds them.
    let numbers: Vec<String> = (0..=64).map(|i| format!("nomor 123{i:03}")).collect();
    for (i, text) in numbers.iter().enumerate() {
        inbox("n", &format!("n{i}"), text).await?;
    }
    ensure!(store.search_prefix_terms(&words("123")).await? == [None]);
    ensure!(found(&store, "123").await?.len() == numbers.len());
    let begun = store.search_prefix_terms(&words("12306")).await?;
    ensure!(begun[0].as_ref().map(Vec::len) == Some(5), "{begun:?}");
    ensure!(found(&store, "12306").await?.len() == 5, "123060 to 123064");
    Ok(())
}

on_both_stores!(partial_words_find_what_every_write_listed);

/// A store indexed before the term list existed: searches by partial words work at once
/// (with the index's own prefix queries), the list is filled in batches that resume where the
/// last one stopped (across a restart too), and only then are prefixes looked up in it.
async fn the_term_list_of_an_older_store_is_filled_in_resumable_batches(
    backend: Backend,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = store_url(backend, &dir).await?;
    let store = Store::connect(&url, 2).await?;
    let texts = [
        "Надішліть рахунок",
        "Пришлите счёт",
        "invoice paid",
        "pembayaran sudah diterima",
    ];
    for (i, text) in texts.iter().enumerate() {
        store
            .inbox_insert(
                "webchat",
                "@sb_x:localhost",
                &message("old", &format!("m{i}"), text),
            )
            .await?;
    }
    let all_terms = listed_terms(&store).await?;
    // As an older build left it: no list, no record of one, nothing writing one.
    let older: &[&str] = match backend {
        Backend::Sqlite => &[
            "DROP TABLE search_terms",
            "DROP TABLE search_state",
            "DROP TABLE search_fts_vocab",
        ],
        Backend::Postgres => &[
            "DROP TRIGGER search_docs_terms ON search_docs",
            "DROP FUNCTION search_docs_list_terms()",
            "DROP TABLE search_terms",
            "DROP TABLE search_state",
        ],
    };
    for sql in older {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(store.pool())
            .await?;
    }
    store.pool().close().await;
    let store = Store::connect(&url, 2).await?;
    ensure!(!store.search_terms_complete());
    ensure!(listed_terms(&store).await?.is_empty());
    ensure!(store.search_prefix_terms(&words("рахун")).await? == [None]);
    ensure!(found(&store, "рахун").await? == ["Надішліть рахунок"]);
    // Written meanwhile: listed by its own write.
    store
        .inbox_insert(
            "webchat",
            "@sb_x:localhost",
            &message("old", "m9", "Kiriman besok"),
        )
        .await?;
    ensure!(listed_terms(&store).await?.contains(&"kiriman".to_string()));

    // Two index entries (SQLite) or rows (PostgreSQL) a batch.
    ensure!(store.search_terms_backfill_batch(2).await? == 2);
    ensure!(!store.search_terms_complete());
    let first = listed_terms(&store).await?;
    // Not complete yet: still the index's prefix query, still found.
    ensure!(store.search_prefix_terms(&words("рахун")).await? == [None]);
    ensure!(found(&store, "рахун").await? == ["Надішліть рахунок"]);
    // A restart in between: the next batch goes on after the last one, listing more.
    store.pool().close().await;
    let store = Store::connect(&url, 2).await?;
    ensure!(!store.search_terms_complete());
    ensure!(store.search_terms_backfill_batch(2).await? == 2);
    let second = listed_terms(&store).await?;
    ensure!(
        second.len() > first.len(),
        "{backend:?}: the second batch listed nothing new: {first:?} then {second:?}"
    );
    let mut batches = 0;
    while store.search_terms_backfill_batch(2).await? > 0 {
        batches += 1;
        ensure!(batches < 100, "{backend:?}: the listing never completes");
    }
    ensure!(store.search_terms_complete());
    let listed = listed_terms(&store).await?;
    for t in &all_terms {
        ensure!(listed.contains(t), "{t} not listed: {listed:?}");
    }
    ensure!(found(&store, "рахун").await? == ["Надішліть рахунок"]);
    ensure!(store.search_prefix_terms(&words("рахун")).await?[0].is_some());
    // And it stays complete after a restart.
    store.pool().close().await;
    let store = Store::connect(&url, 2).await?;
    ensure!(store.search_terms_complete());
    ensure!(store.search_terms_backfill_batch(2).await? == 0);
    Ok(())
}

on_both_stores!(the_term_list_of_an_older_store_is_filled_in_resumable_batches);
