//! Two instances on one PostgreSQL: a standby takes over in seconds, nothing lost, nothing sent
//! twice (docs/ha.md).
//!
//! Real processes: two `switchboard` instances on one fresh PostgreSQL database, a real Synapse
//! whose appservice URL is a load balancer in front of both (`tests/rig/balancer.rs`), operators
//! as real Matrix clients, and a customer on the wire-level fake of VK (Callback API webhooks
//! in, `messages.send` with VK's `random_id` dedup out). The instances are killed (SIGKILL),
//! frozen (SIGSTOP/SIGCONT), cut off from the database (`pg_terminate_backend`) and stopped
//! gracefully (SIGTERM), and the test checks what customers and operators see.
//!
//! Takeover times are printed (and compared with the targets in docs/ha.md by whoever reads
//! them), never asserted.

mod fakes;
#[macro_use]
mod rig;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use fakes::vk::{FakeVk, VkUser, CONFIRMATION, GROUP_ID, SECRET, TOKEN};
use rig::ha::HaEnv;
use rig::{BridgeOptions, Operator};
use serde_json::json;

fn options(fake: &FakeVk) -> BridgeOptions {
    BridgeOptions::default().channel(
        "vk",
        json!({
            "enabled": true,
            "api_url": fake.api_url(),
            "access_token": TOKEN,
            "group_id": GROUP_ID,
            "secret": SECRET,
            "confirmation": CONFIRMATION,
        }),
    )
}

fn customer() -> VkUser {
    VkUser::new(228970688, "Иван", "Петров")
}

/// Delivers a VK event through the balancer, as VK does: again until it is answered `ok`
/// (VK retries an event that was not acknowledged).
async fn deliver(env: &HaEnv, fake: &FakeVk, event: &serde_json::Value) -> anyhow::Result<()> {
    let url = format!("{}/vk/callback", env.balancer.url());
    rig::poll_until(
        "VK's callback acknowledged",
        Duration::from_secs(30),
        || async {
            let (status, body) = fake.post_callback(&url, event).await?;
            Ok((status == 200 && body == "ok").then_some(()))
        },
    )
    .await
}

/// The env with the Callback API confirmed and the customer's first message in a room alice
/// joined; the room id.
async fn set_up(env: &HaEnv, fake: &FakeVk, user: &VkUser) -> anyhow::Result<String> {
    fake.add_user(user, None);
    let url = format!("{}/vk/callback", env.balancer.url());
    let (status, body) = fake.post_callback(&url, &fake.confirmation()).await?;
    ensure!(
        status == 200 && body == CONFIRMATION,
        "confirmation: {status} {body}"
    );
    let (hello, _) = fake.message_new(user, json!({"text": "hello"}));
    deliver(env, fake, &hello).await?;
    let room = env.alice.wait_for_invite("Иван Петров").await?;
    env.alice.wait_for_text(&room, "hello").await?;
    Ok(room)
}

/// The texts of the customer's messages in the room, in timeline order.
fn customer_texts(op: &Operator, room: &str) -> Vec<String> {
    op.messages(room)
        .into_iter()
        .filter(|m| m.sender.starts_with("@sb_vk_"))
        .map(|m| m.body)
        .collect()
}

/// The texts of the community's messages the customer has, in order.
fn replies_received(fake: &FakeVk, user: &VkUser) -> Vec<String> {
    fake.community_messages(user.id)
        .into_iter()
        .filter_map(|(_, m)| m["text"].as_str().map(str::to_string))
        .collect()
}

/// Successful `messages.send` calls made after `since`.
fn sends_after(fake: &FakeVk, since: Instant) -> usize {
    fake.calls("messages.send")
        .into_iter()
        .filter(|c| c.ok() && c.at > since)
        .count()
}

/// The leader is killed mid-burst while customers write through either instance and operators
/// answer through either: every customer message is in the room once and in order, every
/// answer reaches the customer once; the takeover time is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_burst_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("the leader killed mid-burst loses and doubles nothing");
    let fake = FakeVk::start().await?;
    let mut env = HaEnv::start(options(&fake)).await?;
    let user = customer();
    let room = set_up(&env, &fake, &user).await?;
    let leader = env.wait_for_leader(None, Duration::from_secs(10)).await?;
    let standby = 1 - leader;
    ensure!(
        env.role(standby).await.as_deref() == Some("standby"),
        "two leaders"
    );

    steps.step("A burst: customer messages and operator answers, to either instance");
    const MESSAGES: usize = 30;
    let mut answers = Vec::new();
    let mut killed_at = None;
    for i in 1..=MESSAGES {
        let (event, _) = fake.message_new(&user, json!({"text": format!("m{i:02}")}));
        deliver(&env, &fake, &event).await?;
        if i % 2 == 0 {
            let text = format!("r{:02}", i / 2);
            env.alice.send_text(&room, &text).await?;
            answers.push(text);
        }
        if i == MESSAGES / 2 {
            steps.step("SIGKILL the leader mid-burst");
            env.bridges[leader].kill();
            killed_at = Some(Instant::now());
        }
    }
    let killed_at = killed_at.context("never killed")?;

    steps.step("The standby takes over and delivers");
    let led_at = env
        .wait_for_role(standby, "leader", Duration::from_secs(30))
        .await?;
    let first_delivery = rig::poll_until(
        "the new leader's first delivery",
        Duration::from_secs(30),
        || async {
            Ok(fake
                .calls("messages.send")
                .into_iter()
                .filter(|c| c.ok() && c.at > killed_at)
                .map(|c| c.at)
                .min())
        },
    )
    .await?;

    steps.step("Every customer message in the room once, in order");
    let expected: Vec<String> = std::iter::once("hello".to_string())
        .chain((1..=MESSAGES).map(|i| format!("m{i:02}")))
        .collect();
    let last = format!("m{MESSAGES:02}");
    env.alice.wait_for_text(&room, &last).await?;
    ensure!(
        customer_texts(&env.alice, &room) == expected,
        "the room shows {:?}\n{}",
        customer_texts(&env.alice, &room),
        env.logs()
    );

    steps.step("Every answer delivered to the customer once, in order");
    rig::poll_until(
        "every answer delivered",
        Duration::from_secs(60),
        || async { Ok((replies_received(&fake, &user).len() >= answers.len()).then_some(())) },
    )
    .await
    .with_context(|| format!("{:?}\n{}", replies_received(&fake, &user), env.logs()))?;
    ensure!(
        replies_received(&fake, &user) == answers,
        "the customer got {:?}",
        replies_received(&fake, &user)
    );
    println!(
        "failover after SIGKILL: new leader after {:.2} s, first delivery after {:.2} s",
        (led_at - killed_at).as_secs_f64(),
        (first_delivery - killed_at).as_secs_f64()
    );
    Ok(())
}

/// The leader is frozen in the middle of a send until it has lost its lease, the standby takes
/// over, and the old leader is resumed while the new one's send of another answer is still in
/// flight: the old leader sends nothing after it lost the lease, and the customer gets every
/// answer once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_sends_nothing_once_it_lost_the_lease() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("a frozen leader sends nothing once it lost the lease");
    let fake = FakeVk::start().await?;
    let env = HaEnv::start(options(&fake)).await?;
    let user = customer();
    let room = set_up(&env, &fake, &user).await?;
    let leader = env.wait_for_leader(None, Duration::from_secs(10)).await?;
    let standby = 1 - leader;

    steps.step("The leader's send of r1 reaches VK but its answer hangs; then it is frozen");
    fake.hang_sends(1);
    env.alice.send_text(&room, "r1").await?;
    fake.wait_for_call("messages.send", |c| {
        c.str("message").as_deref() == Some("r1")
    })
    .await?;
    env.bridges[leader].signal(rig::SIGSTOP);

    steps.step("An answer while it is frozen; the standby takes over and delivers both");
    let r2 = env.alice.send_text(&room, "r2").await?;
    env.wait_for_role(standby, "leader", Duration::from_secs(30))
        .await?;
    env.alice
        .wait_for_send_status(&room, &r2, "SUCCESS")
        .await?;

    steps.step("The new leader's send of r3 hangs too; the old leader is resumed meanwhile");
    fake.hang_sends(1);
    let r3 = env.alice.send_text(&room, "r3").await?;
    fake.wait_for_call("messages.send", |c| {
        c.str("message").as_deref() == Some("r3")
    })
    .await?;
    let resumed = Instant::now();
    env.bridges[leader].signal(rig::SIGCONT);
    env.wait_for_role(leader, "standby", Duration::from_secs(10))
        .await?;

    steps.step("r3 completes: nobody sent anything after the old leader was resumed");
    env.alice
        .wait_for_send_status(&room, &r3, "SUCCESS")
        .await?;
    ensure!(
        sends_after(&fake, resumed) == 0,
        "{} sends after the old leader was resumed: {:?}\n{}",
        sends_after(&fake, resumed),
        fake.calls("messages.send")
            .into_iter()
            .filter(|c| c.at > resumed)
            .map(|c| c.str("message"))
            .collect::<Vec<_>>(),
        env.logs()
    );
    ensure!(
        replies_received(&fake, &user) == ["r1", "r2", "r3"],
        "the customer got {:?}",
        replies_received(&fake, &user)
    );
    ensure!(
        env.leaders().await == vec![standby],
        "leaders: {:?}",
        env.leaders().await
    );
    Ok(())
}

/// The leader's database sessions are killed by the database: it steps down at once (it cannot
/// know whether its lease still stands), the other instance takes over, and messages flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_steps_down() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("a leader cut off from the database steps down");
    let fake = FakeVk::start().await?;
    let env = HaEnv::start(options(&fake)).await?;
    let user = customer();
    let room = set_up(&env, &fake, &user).await?;
    let leader = env.wait_for_leader(None, Duration::from_secs(10)).await?;
    let standby = 1 - leader;
    let id = env.instance_id(leader).await?;

    steps.step("pg_terminate_backend on every session of the leader");
    let killed = terminate_sessions(env.database_url(), &id).await?;
    ensure!(killed > 0, "no session of {id} found");

    steps.step("It steps down; the other instance leads; never two at once");
    rig::poll_until(
        "the other instance leading",
        Duration::from_secs(30),
        || async {
            let leaders = env.leaders().await;
            ensure!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
            Ok((leaders == vec![standby]).then_some(()))
        },
    )
    .await
    .with_context(|| env.logs())?;
    ensure!(
        env.role(leader).await.as_deref() == Some("standby"),
        "the old leader did not step down"
    );

    steps.step("Messages flow both ways under the new leader");
    let (event, _) = fake.message_new(&user, json!({"text": "after the cut"}));
    deliver(&env, &fake, &event).await?;
    env.alice.wait_for_text(&room, "after the cut").await?;
    let answer = env.alice.send_text(&room, "answer after the cut").await?;
    env.alice
        .wait_for_send_status(&room, &answer, "SUCCESS")
        .await?;
    ensure!(
        replies_received(&fake, &user) == ["answer after the cut"],
        "the customer got {:?}",
        replies_received(&fake, &user)
    );
    Ok(())
}

/// A graceful stop (SIGTERM) of the leader hands over: the standby leads within moments and
/// delivers what came meanwhile; the takeover time is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_of_the_leader_hands_over() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("a graceful stop of the leader hands over");
    let fake = FakeVk::start().await?;
    let mut env = HaEnv::start(options(&fake)).await?;
    let user = customer();
    let room = set_up(&env, &fake, &user).await?;
    let leader = env.wait_for_leader(None, Duration::from_secs(10)).await?;
    let standby = 1 - leader;

    steps.step("SIGTERM the leader; an answer and a customer message right after");
    let stopped_at = Instant::now();
    env.bridges[leader].stop(Duration::from_secs(10)).await?;
    let exited_at = Instant::now();
    let answer = env
        .alice
        .send_text(&room, "answer during the handover")
        .await?;
    let (event, _) = fake.message_new(&user, json!({"text": "during the handover"}));
    deliver(&env, &fake, &event).await?;
    let led_at = env
        .wait_for_role(standby, "leader", Duration::from_secs(30))
        .await?;

    ensure!(
        env.bridges[leader]
            .log()
            .contains("leadership handed over: lease given up"),
        "the stopping leader did not give its lease up:\n{}",
        env.bridges[leader].log_tail()
    );

    steps.step("The new leader delivers both, once");
    env.alice
        .wait_for_send_status(&room, &answer, "SUCCESS")
        .await?;
    let delivered_at = fake
        .calls("messages.send")
        .into_iter()
        .filter(|c| c.ok() && c.at > stopped_at)
        .map(|c| c.at)
        .min()
        .context("no delivery after the stop")?;
    // The customer's own message (the operator's answer contains the same words).
    env.alice
        .wait_for_message_after(&room, 0, "the customer's message after the stop", |m| {
            m.sender.starts_with("@sb_vk_") && m.body == "during the handover"
        })
        .await?;
    ensure!(
        replies_received(&fake, &user) == ["answer during the handover"],
        "the customer got {:?}",
        replies_received(&fake, &user)
    );
    ensure!(
        customer_texts(&env.alice, &room) == ["hello", "during the handover"],
        "the room shows {:?}",
        customer_texts(&env.alice, &room)
    );
    println!(
        "handover after SIGTERM: old leader exited after {:.2} s, new leader after {:.2} s, first delivery after {:.2} s",
        (exited_at - stopped_at).as_secs_f64(),
        (led_at - stopped_at).as_secs_f64(),
        (delivered_at - stopped_at).as_secs_f64()
    );
    Ok(())
}

/// A second instance on the same SQLite store refuses to start and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_a_sqlite_store_is_refused() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("a second instance on a SQLite store is refused");
    let mut first = rig::Bridge::prepare(&BridgeOptions::default()).await?;
    first.spawn()?;
    // Listening comes after the store is open (and locked); no homeserver is needed for that.
    rig::poll_until(
        "the first instance listening",
        Duration::from_secs(30),
        || async { Ok(first.log().contains("listening").then_some(())) },
    )
    .await?;

    steps.step("The second one exits with a message naming the store and PostgreSQL");
    let mut second = first.twin()?;
    second.spawn()?;
    let exited = rig::poll_until(
        "the second instance to exit",
        Duration::from_secs(30),
        || {
            let status = second.exit_status();
            async move { Ok(status) }
        },
    )
    .await?;
    ensure!(!exited.success(), "the second instance exited {exited}");
    let log = second.log();
    ensure!(
        log.contains("another switchboard instance") && log.contains("PostgreSQL"),
        "log: {log}"
    );
    ensure!(first.is_running(), "the first instance stopped too");
    Ok(())
}

/// The frozen leader above, made deterministic: its worker is frozen inside a transaction that
/// holds the lease row share-locked (the store's fence check). The standby still takes the lease
/// once it has expired — PostgreSQL ends the transaction left idle — and the frozen worker's
/// commit is refused when it wakes. No homeserver: the store and the lease queries alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_inside_a_transaction_does_not_block_the_takeover() -> anyhow::Result<()> {
    use switchboard::store::Store;
    let mut steps =
        rig::Steps::new("a leader frozen inside a transaction does not block the takeover");
    let url = rig::postgres::fresh_database_url().await?;
    let store = Store::connect(&url, 2).await?;
    let lease_ms = 2_000;
    let mut election = store.pool().acquire().await?;
    ensure!(
        Store::lease_acquire(&mut election, false, "a", lease_ms).await? == Some(1),
        "a did not take the free lease"
    );

    steps.step("a's bookkeeping commits do not wait for the disk; its acknowledgements do");
    let setting = |pool: &sqlx::AnyPool| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SHOW synchronous_commit")
                .fetch_one(&pool)
                .await
        }
    };
    let (flushed, redoable) = (
        setting(store.pool()).await?,
        setting(store.redoable()).await?,
    );
    ensure!(
        (flushed.as_str(), redoable.as_str()) == ("on", "off"),
        "synchronous_commit: {flushed} for acknowledgements, {redoable} for bookkeeping"
    );

    steps.step("a's worker share-locks the lease row in a transaction, then is frozen");
    // In the pool of redoable bookkeeping, where the commonest fenced write (an inbox row
    // done) runs: its sessions are ended when left idle in a transaction like the others.
    let mut worker = store.redoable().begin().await?;
    let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM leases WHERE name = 'leader' FOR SHARE")
        .fetch_one(&mut *worker)
        .await?;
    ensure!(epoch == 1, "epoch {epoch}");
    let frozen = Instant::now();

    steps.step("b tries as the election does (each try bounded by a second) until it leads");
    let taken = rig::poll_until(
        "b to take the expired lease",
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move {
                let every = Duration::from_secs(1);
                let attempt = async {
                    let mut conn = switchboard::leader::election_session(&url, "b", every).await?;
                    Ok::<_, anyhow::Error>(
                        Store::lease_acquire(&mut conn, false, "b", lease_ms)
                            .await
                            .unwrap_or(None),
                    )
                };
                match tokio::time::timeout(every, attempt).await {
                    Ok(result) => result,
                    Err(_) => Ok(None),
                }
            }
        },
    )
    .await?;
    // Epoch 2 and no other: a try given up while it waited must not complete later.
    ensure!(taken == 2, "b took epoch {taken}");
    println!(
        "takeover {:.1} s after the freeze (lease {} ms, idle transactions end after {:?})",
        frozen.elapsed().as_secs_f64(),
        lease_ms,
        switchboard::store::IDLE_IN_TRANSACTION
    );

    steps.step("a wakes: its transaction is gone, nothing it does in it commits");
    let late = sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = 'leader'")
        .execute(&mut *worker)
        .await;
    let committed = match late {
        Ok(_) => worker.commit().await.is_ok(),
        Err(_) => false,
    };
    drop(election);
    ensure!(
        !committed,
        "the frozen worker's transaction committed after the takeover"
    );
    let current = store.lease_current().await?.context("no lease")?;
    ensure!(
        (current.holder.as_str(), current.epoch) == ("b", 2),
        "lease: {} epoch {}",
        current.holder,
        current.epoch
    );
    Ok(())
}

/// Kills every PostgreSQL session of an instance (`application_name` `switchboard/<id>…`);
/// how many.
async fn terminate_sessions(database_url: &str, instance: &str) -> anyhow::Result<i64> {
    use sqlx::Connection;
    let server = rig::postgres::server_url().await?;
    let mut conn = sqlx::PgConnection::connect(&server).await?;
    let db = url::Url::parse(database_url)?
        .path()
        .trim_start_matches('/')
        .to_string();
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND (application_name = $2 OR application_name LIKE $2 || '/%')) t",
    )
    .bind(db)
    .bind(format!("switchboard/{instance}"))
    .fetch_one(&mut conn)
    .await?;
    Ok(killed)
}
