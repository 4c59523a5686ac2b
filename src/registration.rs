//! The appservice registration file (`registration.yaml`) the homeserver loads.

use std::path::Path;

use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::matrix::ghosts::Namespace;

#[derive(Debug, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub url: String,
    pub as_token: String,
    pub hs_token: String,
    pub sender_localpart: String,
    pub rate_limited: bool,
    pub receive_ephemeral: bool,
    #[serde(rename = "de.sorunome.msc2409.push_ephemeral", default)]
    pub push_ephemeral_unstable: bool,
    pub namespaces: Namespaces,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Namespaces {
    pub users: Vec<NamespaceEntry>,
    #[serde(default)]
    pub aliases: Vec<NamespaceEntry>,
    #[serde(default)]
    pub rooms: Vec<NamespaceEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NamespaceEntry {
    pub exclusive: bool,
    pub regex: String,
}

fn token() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 64)
}

impl Registration {
    /// A new registration with fresh random tokens.
    pub fn generate(config: &Config) -> Registration {
        let ns = Namespace::new(
            &config.appservice.ghost_prefix,
            &config.appservice.bot_localpart,
            &config.homeserver.domain,
        );
        let bot_regex = format!(
            "@{}:{}",
            regex_escape(&config.appservice.bot_localpart),
            regex_escape(&config.homeserver.domain)
        );
        Registration {
            id: config.appservice.id.clone(),
            url: config
                .appservice
                .url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            as_token: token(),
            hs_token: token(),
            sender_localpart: config.appservice.bot_localpart.clone(),
            rate_limited: false,
            receive_ephemeral: true,
            push_ephemeral_unstable: true,
            namespaces: Namespaces {
                users: vec![
                    NamespaceEntry {
                        exclusive: true,
                        regex: bot_regex,
                    },
                    NamespaceEntry {
                        exclusive: true,
                        regex: ns.ghost_regex(),
                    },
                ],
                // Portal aliases (#sb_<channel>_<conversation>) make room creation idempotent.
                aliases: vec![NamespaceEntry {
                    exclusive: true,
                    regex: format!(
                        "#{}.*:{}",
                        regex_escape(&config.appservice.ghost_prefix),
                        regex_escape(&config.homeserver.domain)
                    ),
                }],
                rooms: vec![],
            },
        }
    }

    pub fn read(path: &Path) -> anyhow::Result<Registration> {
        let text = std::fs::read_to_string(path)?;
        Ok(serde_yaml::from_str(&text)?)
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_yaml::to_string(self)?)?;
        Ok(())
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if ".^$*+?()[]{}|\\".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_has_random_tokens_and_exclusive_namespaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "homeserver: {url: 'http://127.0.0.1:8008', domain: example.com}\nappservice: {url: 'http://127.0.0.1:29340/'}\n").unwrap();
        let config = Config::load(&path).unwrap();
        let a = Registration::generate(&config);
        let b = Registration::generate(&config);
        assert_eq!(a.as_token.len(), 64);
        assert_eq!(a.hs_token.len(), 64);
        assert_ne!(a.as_token, b.as_token);
        assert_ne!(a.as_token, a.hs_token);
        assert!(!a.rate_limited && a.receive_ephemeral);
        assert_eq!(a.url, "http://127.0.0.1:29340");
        assert!(a.namespaces.users.iter().all(|n| n.exclusive));
        let regexes: Vec<_> = a
            .namespaces
            .users
            .iter()
            .map(|n| n.regex.as_str())
            .collect();
        assert_eq!(
            regexes,
            ["@switchboard:example\\.com", "@sb_.*:example\\.com"]
        );
        let out = dir.path().join("registration.yaml");
        a.write(&out).unwrap();
        assert_eq!(Registration::read(&out).unwrap().hs_token, a.hs_token);
    }
}
