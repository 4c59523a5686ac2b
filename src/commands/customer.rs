//! `contact`, `tag`, `untag`: the customer behind this conversation — their contacts on every
//! channel with their rooms, and the segment tags routing rules match.

use super::Context;
use crate::matrix::MatrixError;
use crate::portal::customer_name;
use crate::store::conversations::Conversation;
use crate::store::customers::{normalize_tag, Customer};
use crate::store::StoreError;

/// The customer of the conversation this command is about (answering the command itself when
/// there is none or the store fails).
pub(super) async fn of_portal<'a>(
    ctx: &Context<'a>,
) -> Result<Option<(&'a Conversation, Customer)>, MatrixError> {
    let Some(conversation) = ctx.conversation else {
        ctx.reply("This command works in a conversation room.")
            .await?;
        return Ok(None);
    };
    match load(ctx, conversation).await {
        Ok(customer) => Ok(Some((conversation, customer))),
        Err(e) => {
            ctx.reply(&format!("Cannot read this customer: {e}"))
                .await?;
            Ok(None)
        }
    }
}

async fn load(ctx: &Context<'_>, conversation: &Conversation) -> Result<Customer, StoreError> {
    let id = ctx
        .bridge
        .store
        .customer_of(&conversation.channel, &conversation.contact_id)
        .await?;
    ctx.bridge.store.customer(id).await
}

/// `contact`: who the customer is and where else they write.
pub async fn contact(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, customer)) = of_portal(ctx).await? else {
        return Ok(());
    };
    let mut lines = Vec::new();
    for (contact, conversations) in &customer.contacts {
        let mut line = format!("{}: {}", contact.channel, customer_name(contact));
        let addresses: Vec<&str> = [contact.email.as_deref(), contact.phone.as_deref()]
            .into_iter()
            .flatten()
            .filter(|a| Some(*a) != contact.display_name.as_deref())
            .collect();
        if !addresses.is_empty() {
            line.push_str(&format!(" ({})", addresses.join(", ")));
        }
        let rooms: Vec<String> = conversations
            .iter()
            .map(|c| room_label(c, conversation.id))
            .collect();
        if !rooms.is_empty() {
            line.push_str(&format!(" — {}", rooms.join(", ")));
        }
        lines.push(line);
    }
    let tags = if customer.tags.is_empty() {
        "none (`!sb tag <segment>` adds one)".to_string()
    } else {
        customer.tags.join(", ")
    };
    lines.push(format!("tags: {tags}"));
    if let Some(owner) = &customer.last_owner {
        lines.push(format!("last handled by {owner}"));
    }
    if let Some(ratings) = crate::csat::contact_line(ctx.bridge, conversation).await {
        lines.push(ratings);
    }
    ctx.reply(&lines.join("\n")).await
}

fn room_label(c: &Conversation, this: i64) -> String {
    match (&c.room_id, c.id == this) {
        (_, true) => "this room".into(),
        (Some(room), false) => format!("https://matrix.to/#/{room}"),
        (None, false) => "no room yet".into(),
    }
}

/// The customer's other contacts, for `whois`: "whatsapp +1555…, sms +1555…".
pub fn also_on(customer: &Customer, conversation: &Conversation) -> Option<String> {
    let others: Vec<String> = customer
        .contacts
        .iter()
        .filter(|(c, _)| {
            !(c.channel == conversation.channel && c.contact_id == conversation.contact_id)
        })
        .map(|(c, convs)| {
            let room = convs
                .iter()
                .rev()
                .find_map(|c| c.room_id.as_deref())
                .map(|r| format!(" https://matrix.to/#/{r}"))
                .unwrap_or_default();
            format!("{} {}{room}", c.channel, customer_name(c))
        })
        .collect();
    (!others.is_empty()).then(|| others.join(", "))
}

/// `tag <segment…>` (`add` true) or `untag <segment…>`.
pub async fn tag(ctx: &Context<'_>, add: bool) -> Result<(), MatrixError> {
    let Some((conversation, customer)) = of_portal(ctx).await? else {
        return Ok(());
    };
    let name = customer
        .contacts
        .iter()
        .find(|(c, _)| c.channel == conversation.channel && c.contact_id == conversation.contact_id)
        .map(|(c, _)| customer_name(c))
        .unwrap_or_else(|| conversation.contact_id.clone());
    let words: Vec<&str> = ctx.args.split_whitespace().collect();
    if words.is_empty() {
        let verb = if add { "tag" } else { "untag" };
        let now = if customer.tags.is_empty() {
            "none".to_string()
        } else {
            customer.tags.join(", ")
        };
        return ctx
            .reply(&format!(
                "Usage: `!sb {verb} <segment…>`. Tags of {name}: {now}."
            ))
            .await;
    }
    let mut tags = Vec::new();
    for w in words {
        match normalize_tag(w) {
            Some(t) => tags.push(t),
            None => {
                return ctx
                    .reply(&format!(
                        "`{w}` is not a tag: use lowercase letters, digits, - and _ (at most 32)."
                    ))
                    .await
            }
        }
    }
    let now = match ctx.bridge.store.tag_customer(customer.id, &tags, add).await {
        Ok(now) => now,
        Err(e) => return ctx.reply(&format!("Cannot change the tags: {e}")).await,
    };
    let listed = if now.is_empty() {
        "none".to_string()
    } else {
        now.join(", ")
    };
    let mut line = format!("Tags of {name}: {listed} (by {}).", ctx.sender);
    // Tags route new conversations; say so when this one would now go elsewhere.
    if let (Some(contact), Ok(Some(row))) = (
        customer
            .contacts
            .iter()
            .find(|(c, _)| {
                c.channel == conversation.channel && c.contact_id == conversation.contact_id
            })
            .map(|(c, _)| c),
        ctx.bridge.store.routing(conversation.id).await,
    ) {
        use crate::routing::teams::route;
        let by_tags = route(ctx.bridge, conversation, contact, &now, "").await;
        let without = route(ctx.bridge, conversation, contact, &[], "").await;
        if let Some(team) =
            by_tags.filter(|t| Some(t.name.as_str()) != without.map(|w| w.name.as_str()))
        {
            if row.team.as_deref() != Some(team.name.as_str()) {
                line.push_str(&format!(
                    " New conversations of this customer go to team {0}; `!sb transfer {0}` hands this one over.",
                    team.name
                ));
            }
        }
    }
    ctx.reply(&line).await
}
