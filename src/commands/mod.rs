//! Bot commands: `!sb <command> …` in portals and other rooms, bare words in a DM with the bot.
//!
//! One file per command. Each declares the permission level it needs ([`Level`], from
//! `bridge.operators` in the config); the answer is one line from the bot, a notice replying to
//! the command. A command is never relayed to the customer, whatever happens to it.

mod assign;
mod claim;
mod customer;
mod done;
mod export;
mod help;
mod link;
mod note;
mod queue;
mod retry;
mod snooze;
mod state;
mod team;
mod template;
mod transfer;
mod whois;

use crate::bridge::Bridge;
use crate::config::Level;
use crate::matrix::{content, MatrixError};
use crate::store::conversations::Conversation;
use crate::store::routing::RoutingRow;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub name: String,
    pub args: String,
    /// Written as a bare word (a DM with the bot) rather than with `!sb`.
    pub bare: bool,
}

/// The commands this bridge knows, with the level each needs and a one-line description.
pub const COMMANDS: &[(&str, Level, &str)] = &[
    ("help", Level::Operator, "list the commands"),
    ("claim", Level::Operator, "take this conversation: you own it, the others are released"),
    ("assign", Level::Lead, "`assign @user`: give this conversation to an operator"),
    ("transfer", Level::Operator, "`transfer @user` or `transfer <team>`: hand this conversation over"),
    ("unassign", Level::Operator, "give up ownership; the team sees it again"),
    ("done", Level::Operator, "dismiss what needs no answer (the customer's message counts as worked)"),
    ("resolve", Level::Operator, "close the conversation; a new customer message reopens it"),
    ("reopen", Level::Operator, "open a resolved or snoozed conversation again"),
    ("snooze", Level::Operator, "`snooze 2h` or `snooze 09:30`: hide until then, then reopen"),
    ("queue", Level::Operator, "unanswered conversations with their waiting time"),
    ("whois", Level::Operator, "owner, team, state and timers of this conversation, and where else the customer writes"),
    ("contact", Level::Operator, "the customer: their contacts on every channel with their rooms, tags, last owner"),
    ("tag", Level::Operator, "`tag <segment…>`: tag the customer (routing rules match tags, on every channel)"),
    ("untag", Level::Operator, "`untag <segment…>`: remove tags from the customer"),
    ("link", Level::Operator, "`link <room link|#alias|+phone|email>`: the customer there is this same person"),
    ("unlink", Level::Operator, "this contact is not the same person as the customer's others"),
    ("export", Level::Operator, "the transcript as the official record: attached here and sent to the customer"),
    ("note", Level::Operator, "`note <text>`: a private note for the team, never sent to the customer"),
    ("template", Level::Operator, "`template <name> [lang=en_US] [param…]`: send an approved message template (quote params with spaces), where the channel has them"),
    ("retry", Level::Operator, "resend the messages of this conversation that could not be delivered"),
    ("team", Level::Admin, "`team <name> add|lead|remove @user`, `escalate <2h>`, `autoreply <text|off>`, `signature <text|off>`, `hours <days> <HH:MM-HH:MM|closed>`, `holiday add|remove <date>`, `timezone <zone>`, `calendar`, `rules`, `rule add <field=value…>`, `rule remove <n>`, `rules reset`, `lobby <room>`"),
];

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
        if COMMANDS.iter().any(|(n, _, _)| *n == name) {
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
    pub sender: &'a str,
    pub conversation: Option<&'a Conversation>,
    pub args: &'a str,
}

impl Context<'_> {
    /// Answer the command with one notice (idempotent per command event).
    pub async fn reply(&self, text: &str) -> Result<(), MatrixError> {
        let notice = content::with_reply(content::notice(text), self.event_id);
        self.bridge
            .homeserver
            .send(
                self.room_id,
                "m.room.message",
                &format!("sb-cmd-{}", self.event_id),
                &notice,
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
        sender,
        conversation,
        args: &invocation.args,
    };
    let level = crate::routing::level(bridge, sender).await;
    let Some((_, needed, _)) = COMMANDS.iter().find(|(n, _, _)| *n == invocation.name) else {
        return ctx
            .reply(&format!(
                "Unknown command `{}`. {}",
                invocation.name,
                help::short(invocation.bare)
            ))
            .await;
    };
    match level {
        Some(l) if l >= *needed => {}
        _ => {
            let needed = format!("{needed:?}").to_lowercase();
            return ctx
                .reply(&format!(
                    "`{}` needs {needed} rights; {sender} does not have them on this bridge.",
                    invocation.name
                ))
                .await;
        }
    }
    let level = level.unwrap_or(Level::Operator);
    match invocation.name.as_str() {
        "help" => help::run(&ctx, invocation.bare).await,
        "note" => note::run(&ctx).await,
        "retry" => retry::run(&ctx).await,
        "claim" => claim::run(&ctx, level).await,
        "assign" => assign::run(&ctx).await,
        "transfer" => transfer::run(&ctx, level).await,
        "unassign" => claim::unassign(&ctx, level).await,
        "done" => done::run(&ctx).await,
        "resolve" => state::resolve(&ctx).await,
        "reopen" => state::reopen(&ctx).await,
        "snooze" => snooze::run(&ctx).await,
        "queue" => queue::run(&ctx).await,
        "whois" => whois::run(&ctx).await,
        "contact" => customer::contact(&ctx).await,
        "tag" => customer::tag(&ctx, true).await,
        "untag" => customer::tag(&ctx, false).await,
        "link" => link::link(&ctx).await,
        "unlink" => link::unlink(&ctx).await,
        "export" => export::run(&ctx).await,
        "team" => team::run(&ctx).await,
        "template" => template::run(&ctx).await,
        _ => Ok(()),
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
                    state: "open".into(),
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
        if let Err(e) = self.bridge.store.put_routing(row).await {
            self.reply(&format!("Not done: {e}")).await?;
            return Ok(false);
        }
        crate::routing::lobby::update(self.bridge, conversation, row).await;
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
