//! Two bridge instances on one PostgreSQL database, behind a load balancer, for the leadership
//! tests (`tests/ha.rs`).
//!
//! [`HaEnv::start`] prepares the first instance's config and registration, points the
//! registration's URL at a [`Balancer`] (so Synapse's transactions go to either instance and
//! fail over), makes the second instance a twin of the first (same database and tokens, its own
//! port), starts Synapse, then the first instance (which takes the lease) and the second (which
//! stands by). Webhooks can be sent through the balancer or to one instance directly.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use super::balancer::Balancer;
use super::bridge::{Backend, Bridge, BridgeOptions};
use super::env::{ALICE_PASSWORD, BOB_PASSWORD};
use super::operator::Operator;
use super::synapse::Synapse;

/// Field order is drop order: clients first, Synapse last.
pub struct HaEnv {
    pub alice: Operator,
    pub bob: Operator,
    pub bridges: Vec<Bridge>,
    pub balancer: Balancer,
    pub synapse: Synapse,
    http: reqwest::Client,
}

impl HaEnv {
    /// Two instances on a fresh PostgreSQL database; the first one leads when this returns.
    pub async fn start(options: BridgeOptions) -> anyhow::Result<HaEnv> {
        let options = options.backend(Backend::Postgres);
        let mut first = Bridge::prepare(&options).await?;
        let balancer = Balancer::start().await?;
        first.set_registration_url(&balancer.url())?;
        let mut second = first.twin()?;
        let synapse = Synapse::start(&first.registration_path()).await?;
        synapse
            .register_user("alice", ALICE_PASSWORD, true)
            .await
            .context("registering alice")?;
        synapse
            .register_user("bob", BOB_PASSWORD, false)
            .await
            .context("registering bob")?;
        for b in [&first, &second] {
            b.set_homeserver(&synapse.base_url(), synapse.server_name())?;
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        first.start().await?;
        second.start().await?;
        balancer.set_backends(&[first.base_url(), second.base_url()]);
        let alice = Operator::login(&synapse.base_url(), "alice", ALICE_PASSWORD).await?;
        let bob = Operator::login(&synapse.base_url(), "bob", BOB_PASSWORD).await?;
        let env = HaEnv {
            alice,
            bob,
            bridges: vec![first, second],
            balancer,
            synapse,
            http,
        };
        env.wait_for_leader(None, Duration::from_secs(30)).await?;
        Ok(env)
    }

    /// Instance `i`'s `/_switchboard/health` answer.
    pub async fn health(&self, i: usize) -> anyhow::Result<Value> {
        let url = format!("{}/_switchboard/health", self.bridges[i].base_url());
        let resp = self.http.get(url).send().await?;
        Ok(resp.json().await?)
    }

    /// Instance `i`'s role (`leader`, `standby`), or `None` when it does not answer.
    pub async fn role(&self, i: usize) -> Option<String> {
        let h = self.health(i).await.ok()?;
        h["role"].as_str().map(str::to_string)
    }

    /// Waits until one instance (other than `except`) says it leads; its index.
    pub async fn wait_for_leader(
        &self,
        except: Option<usize>,
        timeout: Duration,
    ) -> anyhow::Result<usize> {
        super::poll_until("an instance that leads", timeout, || async {
            for i in 0..self.bridges.len() {
                if Some(i) != except && self.role(i).await.as_deref() == Some("leader") {
                    return Ok(Some(i));
                }
            }
            Ok(None)
        })
        .await
    }

    /// The instances that say they lead right now.
    pub async fn leaders(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for i in 0..self.bridges.len() {
            if self.role(i).await.as_deref() == Some("leader") {
                out.push(i);
            }
        }
        out
    }

    /// Instance `i`'s id (from its health answer).
    pub async fn instance_id(&self, i: usize) -> anyhow::Result<String> {
        let h = self.health(i).await?;
        h["instance"]
            .as_str()
            .map(str::to_string)
            .context("no instance id in the health answer")
    }

    /// Waits until instance `i` answers `role`.
    pub async fn wait_for_role(
        &self,
        i: usize,
        role: &str,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        super::poll_until(&format!("instance {i} to say {role}"), timeout, || async {
            Ok((self.role(i).await.as_deref() == Some(role)).then(Instant::now))
        })
        .await
    }

    pub fn database_url(&self) -> &str {
        self.bridges[0].database_url()
    }

    /// Logs of both instances, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, b) in self.bridges.iter().enumerate() {
            out.push_str(&format!("--- instance {i} ---\n{}\n", b.log_tail()));
        }
        out
    }

    /// Fails when any instance's process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        for (i, b) in self.bridges.iter_mut().enumerate() {
            if !b.is_running() {
                bail!("instance {i} is not running:\n{}", b.log_tail());
            }
        }
        Ok(())
    }
}
