//! `template <name> [lang=<code>] [param…]`: send a pre-approved message template to the
//! customer, on channels that have them (WhatsApp's way to write first or after the reply window
//! closed). Parameters are words; quote one that holds spaces (`"Anna Petrova"`).

use switchboard_channel::{ConversationKey, Outbound, OutboundAction};

use super::Context;
use crate::matrix::MatrixError;

/// What the operator asked for, from the command's arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct TemplateRequest {
    pub name: String,
    pub language: Option<String>,
    pub params: Vec<String>,
}

/// Parse `<name> [lang=<code>] [param…]`.
pub fn parse(args: &str) -> Result<TemplateRequest, String> {
    let words = shell_words::split(args)
        .map_err(|e| format!("cannot read the parameters: {e} (close the quote)"))?;
    let mut words = words.into_iter();
    let name = words
        .next()
        .filter(|n| !n.is_empty())
        .ok_or("name the template: `!sb template <name> [lang=en_US] [param…]`")?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{name}` is not a template name (letters, digits and `_`)"
        ));
    }
    let mut language = None;
    let mut params = Vec::new();
    for w in words {
        match w.strip_prefix("lang=") {
            Some(code) if language.is_none() && params.is_empty() => {
                language = Some(code.to_string())
            }
            _ => params.push(w),
        }
    }
    Ok(TemplateRequest {
        name,
        language,
        params,
    })
}

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some(conversation) = ctx.conversation else {
        return ctx.reply("`template` works in a conversation room.").await;
    };
    let Some(channel) = ctx.bridge.channel(&conversation.channel) else {
        return ctx
            .reply(&format!(
                "The {} channel is not enabled on this bridge.",
                conversation.channel
            ))
            .await;
    };
    if !channel.capabilities().templates {
        return ctx
            .reply(&format!(
                "{} has no message templates: just write your answer.",
                conversation.channel
            ))
            .await;
    }
    let request = match parse(ctx.args) {
        Ok(r) => r,
        Err(why) => return ctx.reply(&format!("Not sent: {why}.")).await,
    };
    let outbound = Outbound {
        conversation: ConversationKey {
            account: conversation.account.clone(),
            chat: conversation.chat.clone(),
        },
        idempotency_key: ctx.event_id.to_string(),
        participants: Vec::new(),
        action: OutboundAction::Template {
            name: request.name.clone(),
            language: request.language,
            params: request.params,
        },
    };
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
        return ctx
            .reply(&format!("Could not queue the template: {e}"))
            .await;
    }
    if let Err(e) = crate::routing::on_operator_message(ctx.bridge, conversation, ctx.sender).await
    {
        tracing::warn!(error = %e, "routing after a template");
    }
    ctx.reply(&format!(
        "Template `{}` queued for the customer.",
        request.name
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_language_and_quoted_params() {
        let r = parse(r#"order_shipped lang=ru "Anna Petrova" A-1234"#).unwrap();
        assert_eq!(r.name, "order_shipped");
        assert_eq!(r.language.as_deref(), Some("ru"));
        assert_eq!(
            r.params,
            vec!["Anna Petrova".to_string(), "A-1234".to_string()]
        );
        let r = parse("hello_world").unwrap();
        assert_eq!((r.language, r.params.len()), (None, 0));
        // `lang=` after a parameter is a parameter.
        assert_eq!(parse("t x lang=en").unwrap().params, vec!["x", "lang=en"]);
    }

    #[test]
    fn bad_input_is_explained() {
        assert!(parse("").unwrap_err().contains("name the template"));
        assert!(parse("bad-name!")
            .unwrap_err()
            .contains("not a template name"));
        assert!(parse(r#"t "unclosed"#)
            .unwrap_err()
            .contains("close the quote"));
    }
}
