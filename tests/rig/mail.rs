//! A real mail system on loopback: Dovecot (IMAP + LMTP) and Postfix (SMTP), private to one test.
//!
//! [`MailServer::start`] installs `dovecot-imapd dovecot-lmtpd postfix` with apt-get when they
//! are missing (Postfix preseeded "No configuration", as `scripts/install-test-deps.sh` does),
//! then starts, without systemd and with everything in a temp dir:
//!
//! - **Dovecot** (`dovecot -F -c <dir>/dovecot.conf`): passwd-file users, maildir under
//!   `<dir>/mail/<user>`, `ssl = no`, IMAP and LMTP listeners on free loopback ports, its own
//!   `base_dir` and `state_dir`.
//! - **Postfix** (`postfix -c <dir>/postfix start`): its own `config_directory`,
//!   `queue_directory` and `data_directory`; `inet_interfaces = 127.0.0.1`, one smtpd on a free
//!   port; `example.test` is a virtual domain delivered over LMTP to that Dovecot; mail to other
//!   domains is refused (`554 Relay access denied`, for the permanent-failure test), mail to an
//!   unknown `example.test` user bounces back to the sender (for the bounce test). Postfix has no
//!   syslog here, so `maillog_file` *and* `maillog_file_prefixes` are set — without the latter
//!   `postfix start` exits 1 silently.
//!
//! Users (password [`PASSWORD`]): `support@`, `alice@` (an operator's personal address) and the
//! customers `customer@`, `colleague@` and `boss@example.test` (a thread of several people).
//! Tests deliver mail over SMTP ([`MailServer::smtp_send`]) or put it straight into a mailbox
//! with IMAP APPEND ([`MailServer::append`], byte-exact, for fixtures); they read a mailbox
//! with [`MailServer::fetch_all`] and mark mail read like another mail client would
//! ([`MailServer::mark_all_seen`]). [`MailServer::restart_imap`] stops Dovecot and
//! starts it again on the same ports, for the outage test. Everything stops on drop.
//!
//! [`MailOptions`] changes the servers for one test:
//!
//! - `tls`: the rig makes its own CA and a server certificate for `localhost` / `127.0.0.1`
//!   (openssl, P-256) plus an unrelated second CA ([`MailServer::other_ca_file`]) for the
//!   wrong-trust tests. Dovecot gets `ssl = yes` (STARTTLS on [`MailServer::imap_port`]) and an
//!   implicit-TLS listener on [`MailServer::imaps_port`]; Postfix offers STARTTLS on
//!   [`MailServer::smtp_port`] and implicit TLS on [`MailServer::smtps_port`]. Both log each TLS
//!   session, so a test can tell the bridge really used TLS. Plaintext stays allowed on the plain
//!   ports, so the rig's own helpers work unchanged.
//! - `no_idle`: Dovecot's `imap_capability` leaves IDLE out (the polling fallback).
//! - `smtp_auth`: Postfix offers SMTP AUTH through Dovecot's auth service (a `service auth`
//!   socket, `smtpd_sasl_type = dovecot`), checking the mail users' passwords; mail from
//!   loopback is still taken without it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{free_port, kill_process_group, reap_child, tail_file, SIGTERM};

pub const PASSWORD: &str = "mail-test-password";
pub const DOMAIN: &str = "example.test";
pub const USERS: [&str; 5] = ["support", "alice", "customer", "colleague", "boss"];

static INSTALL: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);

/// apt-get install the servers once per test process when they are missing.
async fn ensure_installed() -> anyhow::Result<()> {
    let mut done = INSTALL.lock().await;
    if *done {
        return Ok(());
    }
    let have = |bin: &str| Path::new(bin).exists();
    if !(have("/usr/sbin/dovecot") && have("/usr/sbin/postfix") && have("/usr/lib/dovecot/lmtp")) {
        let script = "echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections; \
                      export DEBIAN_FRONTEND=noninteractive; \
                      (apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-lmtpd postfix || \
                       (apt-get update -qq && apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-lmtpd postfix))";
        let out = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running apt-get for dovecot and postfix")?;
        if !out.status.success() {
            bail!(
                "installing dovecot/postfix failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    *done = true;
    Ok(())
}

/// How the rig's servers are set up (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub struct MailOptions {
    pub tls: bool,
    pub no_idle: bool,
    /// Postfix offers SMTP AUTH (PLAIN, LOGIN) with the mail users' passwords, through
    /// Dovecot's auth service; the channel's section then logs in as `support@`.
    pub smtp_auth: bool,
}

/// Dovecot + Postfix for one test.
pub struct MailServer {
    dir: tempfile::TempDir,
    options: MailOptions,
    pub imap_port: u16,
    /// Implicit TLS (993-style); only listening with `tls`.
    pub imaps_port: u16,
    pub lmtp_port: u16,
    pub smtp_port: u16,
    /// Implicit TLS (465-style); only listening with `tls`.
    pub smtps_port: u16,
    dovecot: Option<Child>,
    postfix_started: bool,
}

fn is_root() -> bool {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid has no preconditions and no side effects.
    unsafe { geteuid() == 0 }
}

impl MailServer {
    pub async fn start() -> anyhow::Result<MailServer> {
        Self::start_with(MailOptions::default()).await
    }

    pub async fn start_with(options: MailOptions) -> anyhow::Result<MailServer> {
        ensure_installed().await?;
        let dir = tempfile::Builder::new()
            .prefix("sb-mail-")
            .tempdir()
            .context("mail temp dir")?;
        let mut dir = dir;
        if super::keep_dirs() {
            dir.disable_cleanup(true);
        }
        // Dovecot's mail processes run as nobody and Postfix's as postfix: they must reach in.
        set_mode(dir.path(), 0o755)?;
        let mut server = MailServer {
            dir,
            options,
            imap_port: free_port()?,
            imaps_port: free_port()?,
            lmtp_port: free_port()?,
            smtp_port: free_port()?,
            smtps_port: free_port()?,
            dovecot: None,
            postfix_started: false,
        };
        if options.tls {
            server.make_certificates()?;
        }
        server.write_dovecot_config()?;
        server.start_dovecot().await?;
        server.start_postfix().await?;
        Ok(server)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn address(user: &str) -> String {
        format!("{user}@{DOMAIN}")
    }

    fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    /// The CA that signed the servers' certificate (PEM), with `tls`.
    pub fn ca_file(&self) -> PathBuf {
        self.tls_dir().join("ca.pem")
    }

    /// A CA that signed nothing here (PEM), with `tls`: trusting it alone must fail.
    pub fn other_ca_file(&self) -> PathBuf {
        self.tls_dir().join("other-ca.pem")
    }

    /// Two CAs and a server certificate for localhost / 127.0.0.1, made with openssl.
    fn make_certificates(&self) -> anyhow::Result<()> {
        let t = self.tls_dir();
        std::fs::create_dir_all(&t)?;
        std::fs::write(
            t.join("server.ext"),
            "subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
             keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
        )?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca_ext = [
            "-addext",
            "basicConstraints = critical, CA:TRUE",
            "-addext",
            "keyUsage = critical, keyCertSign, cRLSign",
        ];
        let steps: Vec<Vec<&str>> = vec![
            [
                &[
                    "req",
                    "-x509",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=Switchboard Test CA",
                ][..],
                &ec,
                &ca_ext,
                &["-keyout", "ca.key", "-out", "ca.pem"],
            ]
            .concat(),
            [
                &[
                    "req",
                    "-x509",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=Someone Else's CA",
                ][..],
                &ec,
                &ca_ext,
                &["-keyout", "other-ca.key", "-out", "other-ca.pem"],
            ]
            .concat(),
            [
                &["req", "-subj", "/CN=localhost"][..],
                &ec,
                &["-keyout", "server.key", "-out", "server.csr"],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        ];
        for args in steps {
            let out = Command::new("openssl")
                .args(&args)
                .current_dir(&t)
                .stdin(Stdio::null())
                .output()
                .context("running openssl")?;
            if !out.status.success() {
                bail!(
                    "openssl {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        // Dovecot and Postfix read them as root; when not root, as this user.
        set_mode(&t, 0o755)?;
        Ok(())
    }

    fn write_dovecot_config(&self) -> anyhow::Result<()> {
        let d = self.dir.path();
        for sub in ["dovecot-run", "dovecot-state", "mail"] {
            std::fs::create_dir_all(d.join(sub))?;
        }
        set_mode(&d.join("mail"), 0o777)?;
        let passwd: String = USERS
            .iter()
            .map(|u| format!("{}:{{PLAIN}}{PASSWORD}::::::\n", Self::address(u)))
            .collect();
        std::fs::write(d.join("passwd"), passwd)?;
        let (mail_user, mail_group, internal) = if is_root() {
            ("nobody".to_string(), "nogroup".to_string(), String::new())
        } else {
            let user = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
            (
                user.clone(),
                user.clone(),
                format!("default_internal_user = {user}\ndefault_login_user = {user}\n"),
            )
        };
        let ssl = if self.options.tls {
            let t = self.tls_dir();
            format!(
                "ssl = yes\nssl_cert = <{}\nssl_key = <{}\nssl_min_protocol = TLSv1.2",
                t.join("server.pem").display(),
                t.join("server.key").display()
            )
        } else {
            "ssl = no".to_string()
        };
        // Without IDLE (what the server says after login; Dovecot's default list minus IDLE).
        let imap_protocol = if self.options.no_idle {
            "protocol imap {\n  imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ \
             SORT THREAD=REFERENCES MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED \
             I18NLEVEL=1 CONDSTORE ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE\n}\n"
                .to_string()
        } else {
            String::new()
        };
        let conf = format!(
            r#"base_dir = {d}/dovecot-run
state_dir = {d}/dovecot-state
log_path = {d}/dovecot.log
# The process title shows each IMAP session's user and current command (`wait_for_idle`).
verbose_proctitle = yes
protocols = imap lmtp
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{d}/mail/%u
mail_uid = {mail_user}
mail_gid = {mail_group}
{internal}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@{DOMAIN}
}}
{auth_service}{imap_protocol}"#,
            d = d.display(),
            // Postfix's SASL goes through this socket (smtpd_sasl_type = dovecot).
            auth_service = if self.options.smtp_auth {
                "service auth {\n  unix_listener auth-smtp {\n    mode = 0666\n  }\n}\n"
            } else {
                ""
            },
            imap = self.imap_port,
            imaps = if self.options.tls { self.imaps_port } else { 0 },
            lmtp = self.lmtp_port,
        );
        std::fs::write(d.join("dovecot.conf"), conf)?;
        Ok(())
    }

    async fn start_dovecot(&mut self) -> anyhow::Result<()> {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("dovecot.out"))?;
        let mut cmd = Command::new("/usr/sbin/dovecot");
        cmd.arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().context("spawning dovecot")?;
        let port = self.imap_port;
        let res = super::poll_until(
            "Dovecot's IMAP greeting",
            Duration::from_secs(20),
            || async move {
                let stream = TcpStream::connect(("127.0.0.1", port)).await?;
                let mut lines = BufReader::new(stream).lines();
                let greeting = lines.next_line().await?.unwrap_or_default();
                Ok(greeting.starts_with("* OK").then_some(()))
            },
        )
        .await;
        if let Err(e) = res {
            let _ = child.kill();
            bail!(
                "{e:#}\n--- dovecot.log ---\n{}\n{}",
                tail_file(&d.join("dovecot.log"), 30),
                tail_file(&d.join("dovecot.out"), 30)
            );
        }
        self.dovecot = Some(child);
        Ok(())
    }

    fn stop_dovecot(&mut self) {
        if let Some(mut child) = self.dovecot.take() {
            kill_process_group(child.id(), SIGTERM);
            reap_child(&mut child, Duration::from_secs(10));
        }
    }

    /// Stop Dovecot (every IMAP connection drops) and start it again on the same ports.
    pub async fn restart_imap(&mut self) -> anyhow::Result<()> {
        self.stop_dovecot();
        self.start_dovecot().await
    }

    /// Waits until an IMAP session of `user` is in IDLE, as Dovecot's process title says
    /// (`dovecot/imap [user 127.0.0.1 IDLE]`): a client waiting for news, not one in the middle
    /// of a command.
    pub async fn wait_for_idle(&self, user: &str) -> anyhow::Result<()> {
        let group = self
            .dovecot
            .as_ref()
            .context("Dovecot is not running")?
            .id();
        // The title names the login (`support@example.test`): match its start.
        let wanted = format!("[{user}");
        super::poll_until(
            &format!("an IMAP session of {user} in IDLE"),
            Duration::from_secs(30),
            || {
                let wanted = wanted.clone();
                async move {
                    Ok(dovecot_titles(group)
                        .iter()
                        .any(|t| t.contains(&wanted) && t.contains(" IDLE]"))
                        .then_some(()))
                }
            },
        )
        .await
    }

    /// Stop Dovecot only (an outage); [`MailServer::start_imap`] brings it back.
    pub fn stop_imap(&mut self) {
        self.stop_dovecot();
    }

    pub async fn start_imap(&mut self) -> anyhow::Result<()> {
        self.start_dovecot().await
    }

    fn postfix_dir(&self) -> PathBuf {
        self.dir.path().join("postfix")
    }

    async fn start_postfix(&mut self) -> anyhow::Result<()> {
        let d = self.dir.path();
        let conf = self.postfix_dir();
        std::fs::create_dir_all(&conf)?;
        std::fs::create_dir_all(d.join("postfix-queue"))?;
        let data = d.join("postfix-data");
        std::fs::create_dir_all(&data)?;
        if is_root() {
            let out = Command::new("chown")
                .arg("postfix")
                .arg(&data)
                .output()
                .context("chown postfix data dir")?;
            if !out.status.success() {
                bail!(
                    "chown postfix {}: {}",
                    data.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {d}/postfix-queue
data_directory = {d}/postfix-data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.{DOMAIN}
mydomain = {DOMAIN}
myorigin = {DOMAIN}
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = {DOMAIN}
virtual_transport = lmtp:inet:127.0.0.1:{lmtp}
smtpd_relay_restrictions = reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
maillog_file = {d}/postfix.log
maillog_file_prefixes = {d}
smtputf8_enable = no
biff = no
bounce_queue_lifetime = 0
{sasl}{tls}",
            d = d.display(),
            sasl = if self.options.smtp_auth {
                format!(
                    "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}/dovecot-run/auth-smtp\n",
                    d.display()
                )
            } else {
                String::new()
            },
            lmtp = self.lmtp_port,
            tls = if self.options.tls {
                let t = self.tls_dir();
                format!(
                    "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\nsmtpd_tls_security_level = may\nsmtpd_tls_loglevel = 1\n",
                    t.join("server.pem").display(),
                    t.join("server.key").display()
                )
            } else {
                String::new()
            },
        );
        std::fs::write(conf.join("main.cf"), main_cf)?;
        let smtps = if self.options.tls {
            format!(
                "127.0.0.1:{} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt\n",
                self.smtps_port
            )
        } else {
            String::new()
        };
        let master_cf = format!(
            "127.0.0.1:{smtp} inet n - n - - smtpd
{smtps}pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
tlsmgr    unix  - - n 1000? 1 tlsmgr
",
            smtp = self.smtp_port
        );
        std::fs::write(conf.join("master.cf"), master_cf)?;
        let out = tokio::process::Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&conf)
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .await
            .context("postfix start")?;
        if !out.status.success() {
            bail!(
                "postfix start failed ({}): {}{}\n--- postfix.log ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail_file(&d.join("postfix.log"), 30)
            );
        }
        self.postfix_started = true;
        let port = self.smtp_port;
        super::poll_until(
            "Postfix's SMTP greeting",
            Duration::from_secs(20),
            || async move {
                let stream = TcpStream::connect(("127.0.0.1", port)).await?;
                let mut lines = BufReader::new(stream).lines();
                Ok(lines
                    .next_line()
                    .await?
                    .unwrap_or_default()
                    .starts_with("220")
                    .then_some(()))
            },
        )
        .await
    }

    /// Logs of both servers, for failure messages.
    pub fn logs(&self) -> String {
        let d = self.dir.path();
        format!(
            "--- dovecot.log ---\n{}\n--- postfix.log ---\n{}",
            tail_file(&d.join("dovecot.log"), 30),
            tail_file(&d.join("postfix.log"), 30)
        )
    }

    /// The whole Dovecot log (every login, with `TLS` when the session was encrypted).
    pub fn dovecot_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// The whole Postfix log (with `TLS connection established` lines when TLS is used).
    pub fn postfix_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }

    /// The bridge's `channels.email` section for these servers: mailboxes `support` and `alice`
    /// (personal address of `@alice:localhost`), SMTP without auth (with `smtp_auth`: as
    /// `support@`). Without `tls`: plain
    /// connections. With `tls`: IMAP over implicit TLS and SMTP with STARTTLS, to `localhost`,
    /// trusting the rig's CA (`tls_ca_file`).
    pub fn channel_config(&self) -> serde_json::Value {
        let ca = self.ca_file().display().to_string();
        let mailbox = |name: &str, personal: Option<&str>| {
            let imap = if self.options.tls {
                serde_json::json!({"host": "localhost", "port": self.imaps_port, "tls": "tls",
                    "tls_ca_file": ca, "username": Self::address(name), "password": PASSWORD,
                    "folder": "INBOX"})
            } else {
                serde_json::json!({"host": "127.0.0.1", "port": self.imap_port, "tls": "none",
                    "username": Self::address(name), "password": PASSWORD, "folder": "INBOX"})
            };
            let mut m = serde_json::json!({
                "name": name,
                "address": Self::address(name),
                "display_name": "Acme Support",
                "imap": imap,
            });
            if let Some(p) = personal {
                m["personal_of"] = p.into();
            }
            m
        };
        let mut smtp = if self.options.tls {
            serde_json::json!({"host": "localhost", "port": self.smtp_port, "tls": "starttls", "tls_ca_file": ca})
        } else {
            serde_json::json!({"host": "127.0.0.1", "port": self.smtp_port, "tls": "none"})
        };
        if self.options.smtp_auth {
            smtp["username"] = Self::address("support").into();
            smtp["password"] = PASSWORD.into();
        }
        serde_json::json!({
            "enabled": true,
            "domain": DOMAIN,
            "mailboxes": [mailbox("support", None), mailbox("alice", Some("@alice:localhost"))],
            "smtp": smtp,
            "ack": "flag",
            "poll_interval_secs": 60,
        })
    }

    /// Send a mail through Postfix (SMTP): `from` is the envelope sender, `to` the recipients.
    pub async fn smtp_send(&self, from: &str, to: &[&str], data: &[u8]) -> anyhow::Result<()> {
        let stream = TcpStream::connect(("127.0.0.1", self.smtp_port))
            .await
            .context("connecting to Postfix")?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        async fn reply(
            lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
            expect: &str,
        ) -> anyhow::Result<()> {
            loop {
                let line = lines.next_line().await?.context("SMTP connection closed")?;
                if line.len() >= 4 && &line[3..4] == "-" {
                    continue;
                }
                if !line.starts_with(expect) {
                    bail!("SMTP: expected {expect}, got {line}");
                }
                return Ok(());
            }
        }
        reply(&mut lines, "220").await?;
        write.write_all(b"EHLO test.example.test\r\n").await?;
        reply(&mut lines, "250").await?;
        write
            .write_all(format!("MAIL FROM:<{from}>\r\n").as_bytes())
            .await?;
        reply(&mut lines, "250").await?;
        for r in to {
            write
                .write_all(format!("RCPT TO:<{r}>\r\n").as_bytes())
                .await?;
            reply(&mut lines, "250").await?;
        }
        write.write_all(b"DATA\r\n").await?;
        reply(&mut lines, "354").await?;
        write.write_all(&dot_stuff(data)).await?;
        write.write_all(b".\r\n").await?;
        reply(&mut lines, "250").await?;
        write.write_all(b"QUIT\r\n").await?;
        Ok(())
    }

    /// Put `data` into `user`'s INBOX byte for byte (IMAP APPEND), unread.
    pub async fn append(&self, user: &str, data: &[u8]) -> anyhow::Result<()> {
        let mut imap = RawImap::login(self.imap_port, user).await?;
        imap.append("INBOX", data).await?;
        imap.logout().await
    }

    /// Mark everything in `user`'s INBOX `\Seen`, as another mail client reading it would.
    pub async fn mark_all_seen(&self, user: &str) -> anyhow::Result<()> {
        let mut imap = RawImap::login(self.imap_port, user).await?;
        imap.command("SELECT INBOX").await?;
        imap.command("STORE 1:* +FLAGS (\\Seen)").await?;
        imap.logout().await
    }

    /// Every mail in `user`'s maildir (new and cur), oldest first, as raw bytes.
    pub fn fetch_all(&self, user: &str) -> anyhow::Result<Vec<Vec<u8>>> {
        let base = self.dir.path().join("mail").join(Self::address(user));
        let mut files: Vec<(std::time::SystemTime, String, PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(base.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                files.push((modified, e.file_name().to_string_lossy().to_string(), path));
            }
        }
        files.sort();
        files
            .into_iter()
            .map(|(_, _, p)| std::fs::read(&p).with_context(|| format!("reading {}", p.display())))
            .collect()
    }

    /// The Message-ID header of every mail in `user`'s `folder` (empty when it does not exist).
    pub async fn message_ids(&self, user: &str, folder: &str) -> anyhow::Result<Vec<String>> {
        let mut imap = RawImap::login(self.imap_port, user).await?;
        if imap.command(&format!("EXAMINE {folder}")).await.is_err() {
            imap.logout().await?;
            return Ok(Vec::new());
        }
        let lines = imap
            .command("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            .await
            .unwrap_or_default();
        imap.logout().await?;
        Ok(lines
            .into_iter()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("message-id")
                    .then(|| v.trim().to_string())
            })
            .collect())
    }

    /// Flags of every mail in `user`'s INBOX, as Dovecot reports them (`UID FETCH 1:* FLAGS`).
    pub async fn flags(&self, user: &str) -> anyhow::Result<Vec<String>> {
        let mut imap = RawImap::login(self.imap_port, user).await?;
        imap.command("SELECT INBOX").await?;
        let lines = imap.command("UID FETCH 1:* (FLAGS)").await?;
        imap.logout().await?;
        Ok(lines.into_iter().filter(|l| l.contains("FETCH")).collect())
    }

    /// Waits until `user`'s maildir has a mail whose bytes contain `needle`; returns it.
    pub async fn wait_for_mail(&self, user: &str, needle: &str) -> anyhow::Result<Vec<u8>> {
        let what = format!("a mail containing {needle:?} in {user}'s mailbox");
        let res = super::poll_until(&what, super::DEFAULT_TIMEOUT, || async {
            Ok(self
                .fetch_all(user)?
                .into_iter()
                .find(|m| String::from_utf8_lossy(m).contains(needle)))
        })
        .await;
        res.map_err(|e| e.context(self.logs()))
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        if self.postfix_started {
            let _ = Command::new("/usr/sbin/postfix")
                .arg("-c")
                .arg(self.postfix_dir())
                .arg("stop")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        self.stop_dovecot();
        if super::keep_dirs() {
            eprintln!("kept mail dir {}", self.dir.path().display());
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// CRLF line endings and SMTP dot-stuffing; the data ends with CRLF.
fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Just enough IMAP for a test to act like another mail client.
struct RawImap {
    read: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
    tag: u32,
}

impl RawImap {
    async fn login(port: u16, user: &str) -> anyhow::Result<RawImap> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .context("connecting to Dovecot")?;
        let (read, write) = stream.into_split();
        let mut imap = RawImap {
            read: BufReader::new(read).lines(),
            write,
            tag: 0,
        };
        imap.read.next_line().await?.context("no IMAP greeting")?;
        imap.command(&format!(
            "LOGIN \"{}\" \"{PASSWORD}\"",
            MailServer::address(user)
        ))
        .await?;
        Ok(imap)
    }

    async fn command(&mut self, command: &str) -> anyhow::Result<Vec<String>> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.write
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.until_tagged(&tag, command).await
    }

    async fn until_tagged(&mut self, tag: &str, what: &str) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.read.next_line())
                .await
                .context("IMAP answer timed out")??
                .context("IMAP connection closed")?;
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                if !rest.starts_with("OK") {
                    bail!("IMAP {what}: {rest}");
                }
                return Ok(lines);
            }
            lines.push(line);
        }
    }

    async fn append(&mut self, folder: &str, data: &[u8]) -> anyhow::Result<()> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        // LITERAL+ (Dovecot has it): no continuation round trip.
        self.write
            .write_all(format!("{tag} APPEND {folder} {{{}+}}\r\n", data.len()).as_bytes())
            .await?;
        self.write.write_all(data).await?;
        self.write.write_all(b"\r\n").await?;
        self.until_tagged(&tag, "APPEND").await.map(|_| ())
    }

    async fn logout(&mut self) -> anyhow::Result<()> {
        let _ = self.command("LOGOUT").await;
        Ok(())
    }
}

/// The process titles of every process in Dovecot's process group (`group` is the master's pid:
/// the rig starts it as a group leader).
fn dovecot_titles(group: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid pgrp …: the name may hold spaces, so count after the ')'.
            let after = &stat[stat.rfind(')')? + 1..];
            let pgrp: u32 = after.split_whitespace().nth(2)?.parse().ok()?;
            if pgrp != group {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            Some(String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}
