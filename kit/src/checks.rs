//! A channel's checks of itself (`Channel::check`, run by `switchboard doctor`, at start and by
//! the readiness endpoint), worded the same way for every network.
//!
//! A channel declares only its read-only call and its own words (what the check is about, what
//! the network's answer means); this module owns the rest, once:
//!
//! * how a failure that is not the network's own words becomes a [`Check`]: no answer
//!   ([`Doctor::unreachable`]), an HTTP 401/403 (the credential refused, [`Doctor::refused`]),
//!   408/425/429/5xx (the network's trouble, worth running again later), another status or an
//!   answer that is not the API's (the base URL points elsewhere) — [`Doctor::http`] and
//!   [`Doctor::transport`];
//! * that every failure names its fix as the configuration key to change
//!   (`channels.<section>.<key>`) and where the right value comes from ([`Doctor::set`]);
//! * a configuration section that does not validate is one failed check ([`Doctor::config`]), so
//!   nothing is asked of the network with settings that cannot work; nor when its client cannot
//!   be built ([`Doctor::client`]).

use switchboard_channel::Check;

use crate::http::Transport;

/// Where a credential is configured and where a right one comes from.
#[derive(Clone, Copy, Debug)]
pub struct Credential {
    /// The key in the channel's section (`access_token`).
    pub key: &'static str,
    /// Where to get a right value, as the fix says it ("the Page access token from …").
    pub source: &'static str,
}

/// One channel's doctor: its configuration section, the network's name, the key of its API's
/// base URL, and its credential.
#[derive(Clone, Copy, Debug)]
pub struct Doctor {
    /// The section: `whatsapp` is `channels.whatsapp`.
    pub section: &'static str,
    /// The network as people name it (`WhatsApp`).
    pub network: &'static str,
    /// The key of the API's base URL in the section (`api_url`).
    pub api_url_key: &'static str,
    pub credential: Credential,
}

impl Doctor {
    /// `channels.<section>.<key>`.
    pub fn key(&self, key: &str) -> String {
        format!("channels.{}.{key}", self.section)
    }

    /// The fix "set `channels.<section>.<key>` to `value`".
    pub fn set(&self, key: &str, value: &str) -> String {
        format!("set {} to {value}", self.key(key))
    }

    /// A check that holds.
    pub fn ok(&self, what: impl Into<String>, found: impl Into<String>) -> Check {
        Check::ok(what, found)
    }

    /// The section does not validate: the one check there is (nothing is asked of the network).
    pub fn config<E: std::fmt::Display>(&self, result: Result<(), E>) -> Option<Check> {
        let error = result.err()?;
        Some(Check::failed(
            "configuration",
            error.to_string(),
            format!(
                "correct the key named in channels.{} (docs/channels.md describes each)",
                self.section
            ),
        ))
    }

    /// What comes before any request, alike for every network: the section validates (else
    /// that is the one failed check) and the client for the check `what` can be built (else the
    /// network counts as unreachable). The client, or the one failed check to report.
    pub fn client<C, E: std::fmt::Display, F: std::fmt::Display>(
        &self,
        what: &str,
        valid: Result<(), E>,
        build: impl FnOnce() -> Result<C, F>,
    ) -> Result<C, Check> {
        if let Some(failed) = self.config(valid) {
            return Err(failed);
        }
        build().map_err(|e| self.unreachable(what, &e.to_string()))
    }

    /// The network refused the credential; `detail` is its own words.
    pub fn refused(&self, what: impl Into<String>, detail: &str) -> Check {
        Check::failed(
            what,
            format!(
                "{} refused the {} ({detail})",
                self.network,
                self.credential.key.replace('_', " ")
            ),
            self.set(self.credential.key, self.credential.source),
        )
    }

    /// The network answered, but `key` names something it does not know or that is not ours.
    pub fn wrong(
        &self,
        what: impl Into<String>,
        found: impl Into<String>,
        key: &str,
        value: &str,
    ) -> Check {
        Check::failed(what, found, self.set(key, value))
    }

    /// No answer at all (connection refused, DNS, TLS, timeout).
    pub fn unreachable(&self, what: impl Into<String>, detail: &str) -> Check {
        Check::failed(
            what,
            format!("{} cannot be reached: {detail}", self.network),
            format!(
                "check that {} is {}'s API base URL and that this machine reaches it (DNS, proxy, firewall)",
                self.key(self.api_url_key),
                self.network
            ),
        )
    }

    /// An answer that is not what the API documents.
    pub fn unexpected(&self, what: impl Into<String>, detail: &str) -> Check {
        Check::failed(
            what,
            format!("the answer is not {}'s API: {detail}", self.network),
            format!(
                "{} must point at {}'s API itself",
                self.key(self.api_url_key),
                self.network
            ),
        )
    }

    /// An HTTP error status with the network's own `detail` (may be empty): 401/403 refuse the
    /// credential; 408/425/429/5xx are the network's trouble; 404 means the base URL is wrong;
    /// any other status is quoted.
    pub fn http(&self, what: impl Into<String>, status: u16, detail: &str) -> Check {
        let said = if detail.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {detail}")
        };
        match status {
            401 | 403 => self.refused(what, &said),
            408 | 425 | 429 | 500..=599 => Check::failed(
                what,
                format!("{} is busy or in trouble ({said})", self.network),
                format!(
                    "run the check again later; if it persists, look at {}'s status page",
                    self.network
                ),
            ),
            404 => self.unexpected(what, &said),
            _ => Check::failed(
                what,
                format!("{} answered {said}", self.network),
                format!(
                    "check {} and {} against {}'s documentation",
                    self.key(self.credential.key),
                    self.key(self.api_url_key),
                    self.network
                ),
            ),
        }
    }

    /// A [`Transport`] failure of a JSON call.
    pub fn transport(&self, what: impl Into<String>, failure: &Transport) -> Check {
        match failure {
            Transport::Http { status, .. } => self.http(what, *status, ""),
            Transport::Network(e) => self.unreachable(what, e),
            Transport::Decode(e) => self.unexpected(what, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VK: Doctor = Doctor {
        section: "vk",
        network: "VK",
        api_url_key: "api_url",
        credential: Credential {
            key: "access_token",
            source: "a community token (Manage → API usage → Access tokens)",
        },
    };

    #[test]
    fn each_failure_names_the_key_to_change() {
        let c = VK.http("token", 401, "Unauthorized");
        assert!(!c.holds());
        assert_eq!(
            c.found,
            "VK refused the access token (HTTP 401: Unauthorized)"
        );
        assert_eq!(
            c.fix.as_deref(),
            Some("set channels.vk.access_token to a community token (Manage → API usage → Access tokens)")
        );
        let c = VK.transport("token", &Transport::Network("connection refused".into()));
        assert!(c.found.contains("cannot be reached: connection refused"));
        assert!(c.fix.unwrap().contains("channels.vk.api_url"));
        let c = VK.http("token", 503, "");
        assert!(
            c.found.contains("busy or in trouble (HTTP 503)"),
            "{}",
            c.found
        );
        assert!(c.fix.unwrap().starts_with("run the check again later"));
        let c = VK.transport("token", &Transport::Decode("eof".into()));
        assert!(c
            .fix
            .unwrap()
            .contains("channels.vk.api_url must point at VK's API"));
        let c = VK.http("token", 404, "");
        assert!(c.fix.unwrap().contains("channels.vk.api_url"));
        let c = VK.wrong(
            "group",
            "another community",
            "group_id",
            "the community's id",
        );
        assert_eq!(
            c.fix.as_deref(),
            Some("set channels.vk.group_id to the community's id")
        );
        assert!(VK.config(Ok::<(), String>(())).is_none());
        let c = VK.config(Err("channels.vk.group_id: is required")).unwrap();
        assert_eq!(c.found, "channels.vk.group_id: is required");
    }
}
