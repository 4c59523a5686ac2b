//! The `switchboard` command: generate a registration, run the bridge. This is the one place
//! where channels are named and wired up.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use switchboard::config::{Config, ConfigError};
use switchboard::registration::Registration;
use switchboard_channel::Channel;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Matrix bridge for customer support: one room per customer conversation, answered by a team from the company's one account on every channel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the appservice registration file the homeserver loads (fresh random tokens).
    GenerateRegistration {
        /// The bridge's configuration file.
        #[arg(short, long, default_value = "config.yaml")]
        config: PathBuf,
        /// Where to write the registration.
        #[arg(short, long, default_value = "registration.yaml")]
        registration: PathBuf,
    },
    /// Run the bridge.
    Run {
        #[arg(short, long, default_value = "config.yaml")]
        config: PathBuf,
    },
    /// Check the installation: configuration and registration, store, homeserver (both ways),
    /// and every enabled channel against its network. Exit status: 0 all hold, 2 configuration,
    /// 3 store, 4 homeserver, 5 a channel (the first class that failed).
    Doctor {
        #[arg(short, long, default_value = "config.yaml")]
        config: PathBuf,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the admin API's OpenAPI document (as served at /_switchboard/admin/v1/openapi.json;
    /// `switchboard openapi > docs/openapi.json` refreshes the committed copy).
    Openapi,
    /// The search index.
    Search {
        #[command(subcommand)]
        action: SearchAction,
    },
}

#[derive(Subcommand)]
enum SearchAction {
    /// Rewrite the index rows an older analyzer wrote (all of them with --all); resumable, and
    /// safe while the bridge runs.
    Reindex {
        #[arg(short, long, default_value = "config.yaml")]
        config: PathBuf,
        /// Rebuild every row, not only stale ones.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    // For the test rig: which checkout this binary was built from. Checkouts that share one
    // build dir share its `target/debug/switchboard`, so the rig asks before it runs one.
    if std::env::var_os("SWITCHBOARD_PRINT_SOURCE_DIR").is_some() {
        println!("{}", env!("CARGO_MANIFEST_DIR"));
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse();
    match cli.command {
        Command::GenerateRegistration {
            config,
            registration,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(&format!("{}: {e}", config.display())),
            };
            let reg = Registration::generate(&config);
            if let Err(e) = reg.write(&registration) {
                return fail(&format!("cannot write {}: {e}", registration.display()));
            }
            println!(
                "Wrote {}. Add it to the homeserver's app_service_config_files and restart it.",
                registration.display()
            );
            ExitCode::SUCCESS
        }
        Command::Doctor { config: path, json } => doctor(&path, json),
        Command::Openapi => {
            print!("{}", switchboard::admin::openapi_json());
            ExitCode::SUCCESS
        }
        Command::Run { config: path } => {
            let config = match Config::load(&path) {
                Ok(c) => c,
                Err(e) => return fail(&format!("{}: {e}", path.display())),
            };
            init_logging(&config.logging);
            let channels = match channels(&config) {
                Ok(c) => c,
                Err(e) => return fail(&format!("{}: {e}", path.display())),
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => return fail(&format!("cannot start the runtime: {e}")),
            };
            match runtime.block_on(switchboard::startup::run(config, channels)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("{e:#}")),
            }
        }
        Command::Search {
            action: SearchAction::Reindex { config: path, all },
        } => {
            let config = match Config::load(&path) {
                Ok(c) => c,
                Err(e) => return fail(&format!("{}: {e}", path.display())),
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => return fail(&format!("cannot start the runtime: {e}")),
            };
            match runtime.block_on(reindex(&config, all)) {
                Ok(n) => {
                    println!("Search index up to date ({n} rows rewritten).");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("{e:#}")),
            }
        }
    }
}

/// `switchboard doctor`: a configuration that does not load is a configuration failure (exit 2).
fn doctor(path: &std::path::Path, json: bool) -> ExitCode {
    let refused = |problem: String| {
        if json {
            let report = serde_json::json!({"ok": false, "exit_code": 2, "checks": [{
                "class": "config", "area": "config", "what": format!("configuration ({})", path.display()),
                "found": problem, "fix": "correct the configuration file", "holds": false,
            }]});
            println!("{report}");
        } else {
            println!(
                "FAIL config: configuration ({}) — {problem}",
                path.display()
            );
        }
        ExitCode::from(2)
    };
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return refused(e.to_string()),
    };
    let channels = match channels(&config) {
        Ok(c) => c,
        Err(e) => return refused(e.to_string()),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let report = runtime.block_on(switchboard::doctor::run(&config, &channels));
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.human());
    }
    ExitCode::from(report.exit_code())
}

/// `switchboard search reindex`: the store's stale index rows rewritten, with progress.
async fn reindex(config: &Config, all: bool) -> anyhow::Result<u64> {
    let store = switchboard::store::Store::connect(&config.database.url, 2).await?;
    let n = switchboard::search::reindex::run(&store, all, |done| {
        if done % (switchboard::search::reindex::BATCH as u64 * 20) == 0 {
            println!("{done} rows rewritten…");
        }
    })
    .await?;
    Ok(n)
}

/// How one channel is built from its config section (`None` when it is not enabled).
type Wire = fn(&Config, &str) -> Result<Option<Arc<dyn Channel>>, ConfigError>;

/// Every channel this binary knows: its config section's name and how it is wired up. The only
/// place the core names channels.
const CHANNELS: &[(&str, Wire)] = &[
    ("webchat", |config, name| {
        let mut c: switchboard_webchat::WebchatConfig = config.channel(name)?;
        c.public_url.get_or_insert_with(|| public_url(config));
        Ok(enabled(c.enabled, || switchboard_webchat::Webchat::new(c)))
    }),
    ("telegram", |config, name| {
        let mut c: switchboard_telegram::TelegramConfig = config.channel(name)?;
        c.public_url.get_or_insert_with(|| public_url(config));
        Ok(enabled(c.enabled, || {
            switchboard_telegram::Telegram::new(c)
        }))
    }),
    ("vk", |config, name| {
        let c: switchboard_vk::VkConfig = config.channel(name)?;
        Ok(enabled(c.enabled, || switchboard_vk::Vk::new(c)))
    }),
    ("viber", |config, name| {
        let mut c: switchboard_viber::ViberConfig = config.channel(name)?;
        c.public_url.get_or_insert_with(|| public_url(config));
        Ok(enabled(c.enabled, || switchboard_viber::Viber::new(c)))
    }),
    ("email", |config, name| {
        let c: switchboard_email::EmailConfig = config.channel(name)?;
        Ok(enabled(c.enabled, || switchboard_email::Email::new(c)))
    }),
    ("discord", |config, name| {
        let c: switchboard_discord::DiscordConfig = config.channel(name)?;
        Ok(enabled(c.enabled, || switchboard_discord::Discord::new(c)))
    }),
    ("messenger", |config, name| {
        let c: switchboard_messenger::MetaConfig = config.channel(name)?;
        Ok(enabled(c.enabled, || {
            switchboard_messenger::MetaChannel::messenger(c)
        }))
    }),
    ("instagram", |config, name| {
        let c: switchboard_messenger::MetaConfig = config.channel(name)?;
        Ok(enabled(c.enabled, || {
            switchboard_messenger::MetaChannel::instagram(c)
        }))
    }),
    ("sms", |config, name| {
        let mut c: switchboard_sms::SmsConfig = config.channel(name)?;
        c.public_url.get_or_insert_with(|| public_url(config));
        Ok(enabled(c.enabled, || switchboard_sms::Sms::new(c)))
    }),
    ("whatsapp", |config, name| {
        let c: switchboard_whatsapp::WhatsAppConfig = config.channel(name)?;
        Ok(enabled(c.enabled, || {
            switchboard_whatsapp::WhatsApp::new(c)
        }))
    }),
];

/// The channel `make` builds, when `on`.
fn enabled<C: Channel>(on: bool, make: impl FnOnce() -> C) -> Option<Arc<dyn Channel>> {
    on.then(|| Arc::new(make()) as Arc<dyn Channel>)
}

/// The bridge's public URL without its trailing slash: where channels' webhooks are reached.
fn public_url(config: &Config) -> String {
    config
        .public_url()
        .as_str()
        .trim_end_matches('/')
        .to_string()
}

/// Wire up the enabled channels from their config sections; an unknown section is an error.
fn channels(config: &Config) -> Result<Vec<Arc<dyn Channel>>, ConfigError> {
    for name in config.channels.keys() {
        if !CHANNELS.iter().any(|(known, _)| known == name) {
            let known: Vec<&str> = CHANNELS.iter().map(|(n, _)| *n).collect();
            return Err(ConfigError::Invalid {
                key: format!("channels.{name}"),
                problem: format!("unknown channel (known: {})", known.join(", ")),
            });
        }
    }
    let mut channels = Vec::new();
    for (name, wire) in CHANNELS {
        if let Some(channel) = wire(config, name)? {
            channels.push(channel);
        }
    }
    Ok(channels)
}

/// `logging.format: json` writes one JSON object a line, with the fields of every span it is in
/// (channel, conversation id, transaction id, event id): one customer message can be followed
/// through the relay stages with a filter on one field.
fn init_logging(logging: &switchboard::config::LoggingConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&logging.filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match logging.format {
        switchboard::config::LogFormat::Pretty => fmt.init(),
        switchboard::config::LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("switchboard: {message}");
    ExitCode::FAILURE
}
