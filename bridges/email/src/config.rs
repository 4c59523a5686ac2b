//! The `channels.email` section.
//!
//! ```yaml
//! channels:
//!   email:
//!     enabled: true
//!     domain: example.com          # right-hand side of the Message-IDs we generate
//!     mailboxes:
//!       - name: support            # the account of its conversations
//!         address: support@example.com
//!         imap: {host: imap.example.com, port: 993, tls: tls, username: support@example.com, password: "…"}
//!       - name: alice
//!         address: alice@example.com
//!         personal_of: "@alice:example.com"
//!         imap: {host: imap.example.com, port: 993, tls: tls, username: alice@example.com, password: "…"}
//!     smtp: {host: smtp.example.com, port: 587, tls: starttls, username: support@example.com, password: "…"}
//!     # imap/smtp: tls_ca_file: /etc/ssl/acme-ca.pem  — a private CA trusted besides the public ones
//!     ack: flag                    # flag (keyword $Switchboard) or move (to move_to)
//! ```

use serde::{Deserialize, Serialize};

/// How a connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tls {
    /// Plain TCP (loopback test servers only).
    None,
    /// Plain TCP upgraded with STARTTLS.
    Starttls,
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    #[default]
    Tls,
}

/// How a stored mail is acknowledged on the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ack {
    /// Set the keyword [`EmailConfig::flag`] (default `$Switchboard`); the mail stays where it is.
    #[default]
    Flag,
    /// Move the mail to [`EmailConfig::move_to`].
    Move,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: String,
    pub password: String,
    pub folder: String,
    /// PEM file of a private CA to trust besides the public ones (a company's own server).
    pub tls_ca_file: Option<String>,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            host: String::new(),
            port: 993,
            tls: Tls::Tls,
            username: String::new(),
            password: String::new(),
            folder: "INBOX".into(),
            tls_ca_file: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailboxConfig {
    /// The account name of this mailbox's conversations (`[a-z0-9._-]`).
    pub name: String,
    /// The address mail to this mailbox is sent to, and answers come from.
    pub address: String,
    /// Display name on outgoing mail ("Acme Support").
    pub display_name: Option<String>,
    pub imap: ImapConfig,
    /// When this is an operator's personal address: that operator's Matrix user id.
    pub personal_of: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Seconds before an SMTP conversation is given up (retried later).
    pub timeout_secs: u64,
    /// PEM file of a private CA to trust besides the public ones (a company's own server).
    pub tls_ca_file: Option<String>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 587,
            tls: Tls::Starttls,
            username: None,
            password: None,
            timeout_secs: 30,
            tls_ca_file: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    pub enabled: bool,
    pub mailboxes: Vec<MailboxConfig>,
    pub smtp: SmtpConfig,
    pub ack: Ack,
    /// The keyword set on stored mail with `ack: flag`.
    pub flag: String,
    /// The folder stored mail is moved to with `ack: move`.
    pub move_to: String,
    /// Polling interval when the server has no IDLE (and the longest IDLE before re-checking).
    pub poll_interval_secs: u64,
    /// Right-hand side of generated Message-IDs (default: the first mailbox's domain).
    pub domain: Option<String>,
    /// Appended to every outgoing mail (text; shown as-is in the HTML part too).
    pub signature: Option<String>,
    /// Largest attachment sent or accepted, in bytes.
    pub max_file_size: u64,
    /// Ask for a read notification (`Disposition-Notification-To`, RFC 8098) on every answer;
    /// a returned one is shown as the customer's read receipt.
    pub request_read_receipts: bool,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            enabled: false,
            mailboxes: Vec::new(),
            smtp: SmtpConfig::default(),
            ack: Ack::Flag,
            flag: "$Switchboard".into(),
            move_to: "Switchboard".into(),
            poll_interval_secs: 60,
            domain: None,
            signature: None,
            max_file_size: 25 * 1024 * 1024,
            request_read_receipts: false,
        }
    }
}

impl EmailConfig {
    /// Whether `address` is one of the company's own (a configured mailbox's): never a
    /// customer of a thread, never copied on an answer.
    pub fn is_own(&self, address: &str) -> bool {
        self.mailboxes
            .iter()
            .any(|m| m.address.eq_ignore_ascii_case(address.trim()))
    }

    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.mailboxes.is_empty() {
            return Err("channels.email.mailboxes: at least one mailbox is needed".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, m) in self.mailboxes.iter().enumerate() {
            let at = format!("channels.email.mailboxes[{i}]");
            if m.name.is_empty()
                || !m
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            {
                return Err(format!(
                    "{at}.name: use lowercase letters, digits, '.', '_' or '-'"
                ));
            }
            if !names.insert(m.name.as_str()) {
                return Err(format!("{at}.name: \"{}\" is used twice", m.name));
            }
            if !m.address.contains('@') {
                return Err(format!("{at}.address: not an email address"));
            }
            if m.imap.host.is_empty() || m.imap.username.is_empty() {
                return Err(format!("{at}.imap: host and username are required"));
            }
        }
        if self.smtp.host.is_empty() {
            return Err("channels.email.smtp.host is required".into());
        }
        if self.ack == Ack::Move && self.move_to.trim().is_empty() {
            return Err("channels.email.move_to is required with ack: move".into());
        }
        if self.flag.is_empty()
            || self
                .flag
                .chars()
                .any(|c| c.is_whitespace() || "(){%*\"\\]".contains(c))
        {
            return Err("channels.email.flag: not a valid IMAP keyword".into());
        }
        Ok(())
    }

    /// The domain of generated Message-IDs.
    pub fn message_id_domain(&self) -> String {
        self.domain.clone().unwrap_or_else(|| {
            self.mailboxes
                .first()
                .and_then(|m| m.address.rsplit_once('@').map(|(_, d)| d.to_string()))
                .unwrap_or_else(|| "switchboard.invalid".into())
        })
    }

    pub fn mailbox(&self, name: &str) -> Option<&MailboxConfig> {
        self.mailboxes.iter().find(|m| m.name == name)
    }
}
