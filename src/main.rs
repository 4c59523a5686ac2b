//! The `switchboard` command: generate a registration, run the bridge. This is the one place
//! where channels are named and wired up.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use switchboard::config::Config;
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
}

fn main() -> ExitCode {
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
        Command::Run { config: path } => {
            let config = match Config::load(&path) {
                Ok(c) => c,
                Err(e) => return fail(&format!("{}: {e}", path.display())),
            };
            init_logging(&config.logging.filter);
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
    }
}

/// Wire up the enabled channels from their config sections.
fn channels(config: &Config) -> Result<Vec<Arc<dyn Channel>>, switchboard::config::ConfigError> {
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    let known = [
        "webchat",
        "telegram",
        "email",
        "vk",
        "viber",
        "discord",
        "messenger",
        "instagram",
        "sms",
        "whatsapp",
    ];
    for name in config.channels.keys() {
        if !known.contains(&name.as_str()) {
            return Err(switchboard::config::ConfigError::Invalid {
                key: format!("channels.{name}"),
                problem: format!("unknown channel (known: {})", known.join(", ")),
            });
        }
    }
    let mut webchat: switchboard_webchat::WebchatConfig = config.channel("webchat")?;
    if webchat.enabled {
        if webchat.public_url.is_none() {
            webchat.public_url = Some(
                config
                    .public_url()
                    .as_str()
                    .trim_end_matches('/')
                    .to_string(),
            );
        }
        channels.push(Arc::new(switchboard_webchat::Webchat::new(webchat)));
    }
    let mut telegram: switchboard_telegram::TelegramConfig = config.channel("telegram")?;
    if telegram.enabled {
        if telegram.public_url.is_none() {
            telegram.public_url = Some(
                config
                    .public_url()
                    .as_str()
                    .trim_end_matches('/')
                    .to_string(),
            );
        }
        channels.push(Arc::new(switchboard_telegram::Telegram::new(telegram)));
    }
    let vk: switchboard_vk::VkConfig = config.channel("vk")?;
    if vk.enabled {
        channels.push(Arc::new(switchboard_vk::Vk::new(vk)));
    }
    let mut viber: switchboard_viber::ViberConfig = config.channel("viber")?;
    if viber.enabled {
        if viber.public_url.is_none() {
            viber.public_url = Some(
                config
                    .public_url()
                    .as_str()
                    .trim_end_matches('/')
                    .to_string(),
            );
        }
        channels.push(Arc::new(switchboard_viber::Viber::new(viber)));
    }
    let email: switchboard_email::EmailConfig = config.channel("email")?;
    if email.enabled {
        channels.push(Arc::new(switchboard_email::Email::new(email)));
    }
    let discord: switchboard_discord::DiscordConfig = config.channel("discord")?;
    if discord.enabled {
        channels.push(Arc::new(switchboard_discord::Discord::new(discord)));
    }
    let messenger: switchboard_messenger::MetaConfig = config.channel("messenger")?;
    if messenger.enabled {
        channels.push(Arc::new(switchboard_messenger::MetaChannel::messenger(
            messenger,
        )));
    }
    let instagram: switchboard_messenger::MetaConfig = config.channel("instagram")?;
    if instagram.enabled {
        channels.push(Arc::new(switchboard_messenger::MetaChannel::instagram(
            instagram,
        )));
    }
    let mut sms: switchboard_sms::SmsConfig = config.channel("sms")?;
    if sms.enabled {
        if sms.public_url.is_none() {
            sms.public_url = Some(
                config
                    .public_url()
                    .as_str()
                    .trim_end_matches('/')
                    .to_string(),
            );
        }
        channels.push(Arc::new(switchboard_sms::Sms::new(sms)));
    }
    let whatsapp: switchboard_whatsapp::WhatsAppConfig = config.channel("whatsapp")?;
    if whatsapp.enabled {
        channels.push(Arc::new(switchboard_whatsapp::WhatsApp::new(whatsapp)));
    }
    Ok(channels)
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn fail(message: &str) -> ExitCode {
    eprintln!("switchboard: {message}");
    ExitCode::FAILURE
}
