//! Bot commands: `!sb <command> …` in portals and other rooms, bare words in a DM with the bot.
//!
//! One file per command. Each declares the permission level it needs ([`Level`], from
//! `bridge.operators` in the config), which the service layer ([`crate::service`]) checks;
//! commands that change routing, teams or the outbox are thin: they parse their words and call
//! the service function the admin API calls too. The answer is one line from the bot, a notice
//! replying to the command. A command is never relayed to the customer, whatever happens to it.

mod assign;
mod canned;
mod claim;
mod customer;
mod done;
mod export;
mod help;
mod link;
mod media;
mod note;
mod queue;
mod remove;
mod report;
mod retry;
mod search;
mod snooze;
mod state;
mod t;
mod team;
mod template;
mod transfer;
mod whois;

use crate::bridge::Bridge;
use crate::config::Level;
use crate::matrix::{content, MatrixError};
use crate::service::{Action, ServiceError};
use crate::store::conversations::Conversation;
use crate::store::routing::ConversationState;
use crate::store::routing::RoutingRow;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub name: String,
    pub args: String,
    /// Written as a bare word (a DM with the bot) rather than with `!sb`.
    pub bare: bool,
}

/// A command this bridge knows. Dispatch matches on it exhaustively, so a command added here
/// without a handler does not build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Claim,
    Assign,
    Transfer,
    Unassign,
    Done,
    Resolve,
    Reopen,
    Snooze,
    Queue,
    Whois,
    Contact,
    Tag,
    Untag,
    Link,
    Unlink,
    Export,
    Note,
    Template,
    T,
    Canned,
    Report,
    Retry,
    Team,
    Search,
    Transcribe,
    Ocr,
    Remove,
}

/// Every command: its name, the level it needs and a one-line description (what `help` shows).
pub const COMMANDS: &[(Command, &str, Level, &str)] = &[
    (Command::Help, "help", Level::Operator, "list the commands"),
    (Command::Claim, "claim", Level::Operator, "take this conversation: you own it, the others are released"),
    (Command::Assign, "assign", Level::Lead, "`assign @user`: give this conversation to an operator"),
    (Command::Transfer, "transfer", Level::Operator, "`transfer @user` or `transfer <team>`: hand this conversation over"),
    (Command::Unassign, "unassign", Level::Operator, "give up ownership; the team sees it again"),
    (Command::Done, "done", Level::Operator, "dismiss what needs no answer (the customer's message counts as worked)"),
    (Command::Resolve, "resolve", Level::Operator, "close the conversation; a new customer message reopens it"),
    (Command::Reopen, "reopen", Level::Operator, "open a resolved or snoozed conversation again"),
    (Command::Snooze, "snooze", Level::Operator, "`snooze 2h` or `snooze 09:30`: hide until then, then reopen"),
    (Command::Queue, "queue", Level::Operator, "unanswered conversations with their waiting time"),
    (Command::Whois, "whois", Level::Operator, "owner, team, state and timers of this conversation, and where else the customer writes"),
    (Command::Contact, "contact", Level::Operator, "the customer: their contacts on every channel with their rooms, tags, last owner"),
    (Command::Tag, "tag", Level::Operator, "`tag <segment…>`: tag the customer (routing rules match tags, on every channel)"),
    (Command::Untag, "untag", Level::Operator, "`untag <segment…>`: remove tags from the customer"),
    (Command::Link, "link", Level::Operator, "`link <room link|#alias|+phone|email>`: the customer there is this same person"),
    (Command::Unlink, "unlink", Level::Operator, "this contact is not the same person as the customer's others"),
    (Command::Remove, "remove", Level::Operator, "`remove <address or name>`: in a group conversation, answers no longer go to that person (until they write again); alone: who answers go to"),
    (Command::Export, "export", Level::Operator, "the transcript as the official record: attached here and sent to the customer"),
    (Command::Note, "note", Level::Operator, "`note <text>`: a private note for the team, never sent to the customer"),
    (Command::Template, "template", Level::Operator, "`template <name> [lang=en_US] [param…]`: send an approved message template (quote params with spaces), where the channel has them"),
    (Command::Search, "search", Level::Operator, "`search <words> [\"phrase\"] [channel:…] [from:…] [team:…] [after:/before:YYYY-MM-DD] [has:file|image|voice] [sort:best]`: search all history you may see; results in your direct chat with me; `search more` for the next page"),
    (Command::T, "t", Level::Operator, "`t <name> [key=value…]`: send a canned reply to the customer (or write `::name` in a message)"),
    (Command::Canned, "canned", Level::Operator, "`canned add|edit <name> [scope=personal|everyone|<team>] [lang=<code>] <text…>`, `canned attach|detach <name>` (attach: in reply to a file), `canned remove|show <name>`, `canned list`: canned replies (personal: yours; a team's: its leads; everyone's: admins)"),
    (Command::Report, "report", Level::Lead, "`report [today|7d|30d|month|YYYY-MM] [by channel|operator|team]`: figures of your teams (admins: all) as a table, a chart and a CSV file; in a lobby or a DM with the bot"),
    (Command::Transcribe, "transcribe", Level::Operator, "in reply to a voice message: its transcript (again, when the engine was down or not configured)"),
    (Command::Ocr, "ocr", Level::Operator, "in reply to an image: the text in it (again, when it failed before)"),
    (Command::Retry, "retry", Level::Operator, "resend the messages of this conversation that could not be delivered"),
    (Command::Team, "team", Level::Admin, "`team <name> add|lead|remove @user`, `escalate <2h>`, `autoreply <text|off>`, `signature <text|off>`, `hours <days> <HH:MM-HH:MM|closed>`, `holiday add|remove <date>`, `timezone <zone>`, `calendar`, `rules`, `rule add <field=value…>`, `rule remove <n>`, `rules reset`, `lobby <room>`"),
];

impl Command {
    /// The command called `name` (lowercase), if there is one.
    pub fn from_name(name: &str) -> Option<Command> {
        COMMANDS
            .iter()
            .find(|(_, n, _, _)| *n == name)
            .map(|(c, _, _, _)| *c)
    }

    /// Its name, as typed.
    pub fn name(self) -> &'static str {
        COMMANDS
            .iter()
            .find(|(c, _, _, _)| *c == self)
            .map_or("", |(_, n, _, _)| n)
    }

    /// The level it needs.
    pub fn level(self) -> Level {
        COMMANDS
            .iter()
            .find(|(c, _, _, _)| *c == self)
            .map_or(Level::Admin, |(_, _, l, _)| *l)
    }
}

/// `!sb …` anywhere; in rooms that are not portals also a bare known command (only acted on in
/// a DM with the bot, see [`run`]).
pub fn parse(body: &str, in_portal: bool) -> Option<Invocation> {
    let trimmed = body.trim_start();
    if let Some(rest) = trimmed.strip_prefix("!sb") {
        if rest.is_empty() || rest.starts_with(char::is_whitespace) {
            let rest = rest.trim();
            let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let name = if name.is_empty() { "help" } else { name };
            return Some(Invocation {
                name: name.to_lowercase(),
                args: args.trim().to_string(),
                bare: false,
            });
        }
    }
    if !in_portal {
        let (name, args) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        let name = name.to_lowercase();
        if Command::from_name(&name).is_some() {
            return Some(Invocation {
                name,
                args: args.trim().to_string(),
                bare: true,
            });
        }
    }
    None
}

/// What a command needs to act and answer.
pub struct Context<'a> {
    pub bridge: &'a Bridge,
    pub room_id: &'a str,
    pub event_id: &'a str,
    /// The event the command answers (`m.in_reply_to`), when it is written as a reply.
    pub reply_to: Option<&'a str>,
    pub sender: &'a str,
    pub conversation: Option<&'a Conversation>,
    pub args: &'a str,
}

impl Context<'_> {
    /// Answer the command with one notice (idempotent per command event).
    pub async fn reply(&self, text: &str) -> Result<(), MatrixError> {
        self.reply_content(&content::with_reply(content::notice(text), self.event_id))
            .await
    }

    /// Answer with what the service layer said: its sentence, or why it was not done.
    pub async fn answer(&self, result: Result<String, ServiceError>) -> Result<(), MatrixError> {
        match result {
            Ok(text) => self.reply(&text).await,
            Err(e) => {
                // The operator reads why; a failure of the bridge's own parts is for the
                // administrator's log too.
                if matches!(e, ServiceError::Store(_) | ServiceError::Homeserver(_)) {
                    tracing::warn!(room = self.room_id, sender = self.sender, error = %e, "command not done");
                }
                self.reply(&e.to_string()).await
            }
        }
    }

    /// Answer the command with any message content (a table, say), under the same
    /// transaction id as [`Context::reply`]: one answer per command event.
    pub async fn reply_content(&self, content: &serde_json::Value) -> Result<(), MatrixError> {
        self.bridge
            .homeserver
            .send(
                self.room_id,
                "m.room.message",
                &format!("sb-cmd-{}", self.event_id),
                content,
                None,
                None,
            )
            .await
            .map(|_| ())
    }
}

/// Run a command and answer it.
pub async fn run(
    bridge: &Bridge,
    room_id: &str,
    event_id: &str,
    reply_to: Option<&str>,
    sender: &str,
    conversation: Option<&Conversation>,
    invocation: Invocation,
) -> Result<(), MatrixError> {
    if invocation.bare && !is_dm(bridge, room_id).await? {
        return Ok(());
    }
    let ctx = Context {
        bridge,
        room_id,
        event_id,
        reply_to,
        sender,
        conversation,
        args: &invocation.args,
    };
    let Some(command) = Command::from_name(&invocation.name) else {
        return ctx
            .reply(&format!(
                "Unknown command `{}`. {}",
                invocation.name,
                help::short(invocation.bare)
            ))
            .await;
    };
    // The service layer decides who may run what (the same check the admin API's calls meet).
    let actor = match crate::service::authorize_user(bridge, sender, Action::Command(command)).await
    {
        Ok(actor) => actor,
        Err(refusal) => return ctx.reply(&refusal.to_string()).await,
    };
    let level = actor.level;
    match command {
        Command::Help => help::run(&ctx, invocation.bare).await,
        Command::Note => note::run(&ctx).await,
        Command::Retry => retry::run(&ctx, &actor).await,
        Command::Claim => claim::run(&ctx, level).await,
        Command::Assign => assign::run(&ctx, &actor).await,
        Command::Transfer => transfer::run(&ctx, &actor).await,
        Command::Unassign => claim::unassign(&ctx, level).await,
        Command::Done => done::run(&ctx).await,
        Command::Resolve => state::resolve(&ctx, &actor).await,
        Command::Reopen => state::reopen(&ctx).await,
        Command::Snooze => snooze::run(&ctx).await,
        Command::Queue => queue::run(&ctx, &actor).await,
        Command::Whois => whois::run(&ctx).await,
        Command::Contact => customer::contact(&ctx).await,
        Command::Tag => customer::tag(&ctx, true).await,
        Command::Untag => customer::tag(&ctx, false).await,
        Command::Link => link::link(&ctx).await,
        Command::Unlink => link::unlink(&ctx).await,
        Command::Export => export::run(&ctx).await,
        Command::Team => team::run(&ctx, &actor).await,
        Command::Template => template::run(&ctx).await,
        Command::Search => search::run(&ctx, level).await,
        Command::T => t::run(&ctx, level).await,
        Command::Canned => canned::run(&ctx, level).await,
        Command::Report => report::run(&ctx, level).await,
        Command::Transcribe => {
            media::run(&ctx, crate::store::media_jobs::JobKind::Transcribe).await
        }
        Command::Ocr => media::run(&ctx, crate::store::media_jobs::JobKind::Ocr).await,
        Command::Remove => remove::run(&ctx).await,
    }
}

impl Context<'_> {
    /// The conversation this command is about, or a reply saying it needs one.
    pub async fn portal(&self) -> Result<Option<(&Conversation, RoutingRow)>, MatrixError> {
        let Some(conversation) = self.conversation else {
            self.reply("This command works in a conversation room.")
                .await?;
            return Ok(None);
        };
        match self.bridge.store.routing(conversation.id).await {
            Ok(row) => Ok(Some((
                conversation,
                row.unwrap_or(RoutingRow {
                    conversation_id: conversation.id,
                    state: ConversationState::Open,
                    ..Default::default()
                }),
            ))),
            Err(e) => {
                self.reply(&format!("Cannot read this conversation's routing: {e}"))
                    .await?;
                Ok(None)
            }
        }
    }

    /// Store a changed routing row and refresh the lobby; reply with the error if the store fails.
    pub async fn save(
        &self,
        conversation: &Conversation,
        row: &RoutingRow,
    ) -> Result<bool, MatrixError> {
        let stamp = crate::store::events::Stamp {
            at: self.bridge.clock.now_ms(),
            actor: Some(self.sender),
        };
        if let Err(e) = self.bridge.store.put_routing(row, &stamp).await {
            tracing::warn!(room = self.room_id, sender = self.sender, error = %e, "command not done");
            self.reply(&format!("Not done: {e}")).await?;
            return Ok(false);
        }
        self.bridge.lobby_queue.touch(conversation.id);
        Ok(true)
    }
}

/// `@user:server` or a bare localpart on this server.
pub fn user_arg(bridge: &Bridge, arg: &str) -> Option<String> {
    let arg = arg.trim();
    if arg.starts_with('@') && ruma::UserId::parse(arg).is_ok() {
        return Some(arg.to_string());
    }
    let local = arg.trim_start_matches('@');
    let candidate = format!("@{local}:{}", bridge.namespace.domain);
    ruma::UserId::parse(candidate.as_str())
        .ok()
        .map(|_| candidate)
}

/// A room with just the bot and one other member.
async fn is_dm(bridge: &Bridge, room_id: &str) -> Result<bool, MatrixError> {
    let members = bridge.homeserver.joined_members(room_id).await?;
    Ok(members.len() == 2 && members.iter().any(|m| m == &bridge.namespace.bot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_in_the_table_once() {
        for (command, name, _, _) in COMMANDS {
            assert_eq!(Command::from_name(name), Some(*command));
            assert_eq!(command.name(), *name);
            assert_eq!(
                COMMANDS.iter().filter(|(c, _, _, _)| c == command).count(),
                1,
                "{name}"
            );
        }
        assert_eq!(Command::from_name("frobnicate"), None);
    }

    #[test]
    fn parses_prefixed_and_bare_commands() {
        let p = parse("!sb note call back at 5", true).unwrap();
        assert_eq!(
            (p.name.as_str(), p.args.as_str(), p.bare),
            ("note", "call back at 5", false)
        );
        assert_eq!(parse("!sb", true).unwrap().name, "help");
        assert_eq!(parse("  !sb HELP", true).unwrap().name, "help");
        assert_eq!(parse("!sbx", true), None);
        assert_eq!(
            parse("help", true),
            None,
            "bare words in a portal are messages to the customer"
        );
        assert_eq!(parse("help", false).unwrap().bare, true);
        assert_eq!(parse("hello there", false), None);
        assert_eq!(parse("!sb frobnicate", true).unwrap().name, "frobnicate");
    }
}
