//! `t <name> [lang=<code>] [key=value…]`: send a canned reply to the customer, filled in for this
//! conversation ([`crate::canned`]). Values with spaces are quoted (`order="A 12"`). A reply
//! naming a variable with no value is not sent; the answer names the variable. What goes out is
//! quoted in the answer, so the other operators see what the customer got.

use std::collections::BTreeMap;

use switchboard_channel::{Content, ConversationKey, Outbound, OutboundAction};

use super::Context;
use crate::canned::{self, normalize_language};
use crate::config::Level;
use crate::matrix::MatrixError;

/// What the operator asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub language: Option<String>,
    pub args: BTreeMap<String, String>,
}

/// Parse `<name> [lang=<code>] [key=value…]`.
pub fn parse(args: &str) -> Result<Request, String> {
    let words = shell_words::split(args)
        .map_err(|e| format!("cannot read the arguments: {e} (close the quote)"))?;
    let mut words = words.into_iter();
    let name = words
        .next()
        .map(|n| n.to_lowercase())
        .filter(|n| !n.is_empty())
        .ok_or(
            "name the canned reply: `!sb t <name> [key=value…]` (`!sb canned list` lists them)",
        )?;
    let mut request = Request {
        name,
        language: None,
        args: BTreeMap::new(),
    };
    for w in words {
        let Some((key, value)) = w.split_once('=') else {
            return Err(format!("`{w}` is not `key=value`"));
        };
        let identifier = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if key == "lang" {
            request.language = Some(
                normalize_language(value)
                    .ok_or_else(|| format!("`lang={value}` is not a language code"))?,
            );
        } else if identifier {
            request.args.insert(key.to_string(), value.to_string());
        } else {
            return Err(format!(
                "`{key}` is not a variable name (lowercase letters, digits and _)"
            ));
        }
    }
    Ok(request)
}

pub async fn run(ctx: &Context<'_>, level: Level) -> Result<(), MatrixError> {
    let Some(conversation) = ctx.conversation else {
        return ctx.reply("`t` works in a conversation room.").await;
    };
    let Some(channel) = ctx.bridge.channel(&conversation.channel) else {
        return ctx
            .reply(&format!(
                "Not sent: the {} channel is not enabled on this bridge.",
                conversation.channel
            ))
            .await;
    };
    let request = match parse(ctx.args) {
        Ok(r) => r,
        Err(why) => return ctx.reply(&format!("Not sent: {why}.")).await,
    };
    let rendered = match canned::prepare(
        ctx.bridge,
        conversation,
        ctx.sender,
        level,
        &request.name,
        request.language.as_deref(),
        &request.args,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return ctx.reply(&format!("Not sent: {e}.")).await,
    };
    let caps = channel.capabilities();
    if let Err(why) = canned::check_files(
        &request.name,
        &rendered.attachments,
        &conversation.channel,
        caps.max_file_size,
    ) {
        return ctx.reply(&format!("Not sent: {why}.")).await;
    }
    match crate::relay::matrix_to_outbox::reply_window_open(ctx.bridge, conversation, &caps).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return ctx.reply(&why).await,
        Err(e) => return ctx.reply(&format!("Not sent: {e}.")).await,
    }
    let mut content = Content {
        text: rendered.text.clone(),
        html: None,
        attachments: rendered.attachments.clone(),
    };
    let attribution = ctx.bridge.config.bridge.attribution;
    if !matches!(attribution, crate::config::Attribution::None) {
        let name = ctx
            .bridge
            .homeserver
            .displayname(ctx.sender)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| crate::relay::matrix_to_outbox::operator_name(ctx.sender));
        crate::matrix::content::attribute(&mut content, attribution, &name);
    }
    let outbound = Outbound {
        conversation: ConversationKey {
            account: conversation.account.clone(),
            chat: conversation.chat.clone(),
        },
        idempotency_key: ctx.event_id.to_string(),
        participants: Vec::new(),
        action: OutboundAction::Message {
            content,
            reply_to: None,
        },
    };
    // Routing first, as for a written answer: the conversation counts as answered.
    if let Err(e) = crate::routing::on_operator_message(ctx.bridge, conversation, ctx.sender).await
    {
        return ctx.reply(&format!("Not sent: {e}.")).await;
    }
    if let Err(e) = ctx
        .bridge
        .queue_outbound(
            conversation.id,
            ctx.event_id,
            ctx.room_id,
            ctx.sender,
            &outbound,
            Some(ctx.sender),
        )
        .await
    {
        return ctx.reply(&format!("Not sent: {e}.")).await;
    }
    let quoted: String = rendered.text.lines().map(|l| format!("> {l}\n")).collect();
    let files = if rendered.attachments.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = rendered
            .attachments
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        format!("\nwith {}", names.join(", "))
    };
    ctx.reply(&format!(
        "Canned reply `{}` sent to the customer:\n{}{files}",
        request.name,
        quoted.trim_end()
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_language_and_quoted_values() {
        let r = parse(r#"Shipped lang=RU order="A 12" eta=Friday"#).unwrap();
        assert_eq!(r.name, "shipped");
        assert_eq!(r.language.as_deref(), Some("ru"));
        assert_eq!(r.args.get("order").map(String::as_str), Some("A 12"));
        assert_eq!(r.args.get("eta").map(String::as_str), Some("Friday"));
        assert!(parse("").unwrap_err().contains("name the canned reply"));
        assert!(parse("x loose").unwrap_err().contains("key=value"));
        assert!(parse("x Bad-Key=1").unwrap_err().contains("not a variable"));
    }
}
