//! `link <room|phone|email>` and `unlink`: operators say which contacts are the same person
//! (or are not), over the automatic phone/email matching.

use super::customer::of_portal;
use super::Context;
use crate::matrix::MatrixError;

/// `link <room id | #alias | matrix.to link | +E.164 phone | email>`: this conversation's
/// customer and the other one are the same person.
pub async fn link(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((_, customer)) = of_portal(ctx).await? else {
        return Ok(());
    };
    let target = ctx.args.trim();
    if target.is_empty() {
        return ctx
            .reply("Usage: `!sb link <room link, #alias, +phone or email>` of the same customer elsewhere.")
            .await;
    }
    let others = match find(ctx, target).await {
        Ok(found) => found,
        Err(problem) => return ctx.reply(&problem).await,
    };
    let others: Vec<i64> = others.into_iter().filter(|&o| o != customer.id).collect();
    if others.is_empty() {
        return ctx
            .reply(&format!("`{target}` is already this customer."))
            .await;
    }
    for other in &others {
        if let Err(e) = ctx
            .bridge
            .store
            .link_customers(customer.id, *other, ctx.sender)
            .await
        {
            return ctx.reply(&format!("Cannot link: {e}")).await;
        }
    }
    let merged = match ctx.bridge.store.customer(customer.id).await {
        Ok(c) => c,
        Err(e) => {
            return ctx
                .reply(&format!("Linked, but cannot read the customer: {e}"))
                .await
        }
    };
    let on: Vec<String> = merged
        .contacts
        .iter()
        .map(|(c, _)| format!("{} {}", c.channel, crate::portal::customer_name(c)))
        .collect();
    ctx.reply(&format!(
        "Linked by {}: one customer on {}.",
        ctx.sender,
        on.join(", ")
    ))
    .await
}

/// The customers a `link` argument names.
async fn find(ctx: &Context<'_>, target: &str) -> Result<Vec<i64>, String> {
    let store = &ctx.bridge.store;
    let target = target
        .strip_prefix("https://matrix.to/#/")
        .map(|t| t.split('?').next().unwrap_or(t))
        .map(percent_decode)
        .unwrap_or_else(|| target.to_string());
    let room = if target.starts_with('!') {
        Some(target.clone())
    } else if target.starts_with('#') {
        match ctx.bridge.homeserver.resolve_alias(&target).await {
            Ok(room) => Some(room),
            Err(e) => return Err(format!("Cannot find the room `{target}`: {e}")),
        }
    } else {
        None
    };
    if let Some(room) = room {
        let conversation = store
            .conversation_by_room(&room)
            .await
            .map_err(|e| format!("Cannot read the store: {e}"))?
            .ok_or_else(|| format!("`{target}` is not a conversation room of this bridge."))?;
        let id = store
            .customer_of(&conversation.channel, &conversation.contact_id)
            .await
            .map_err(|e| format!("Cannot read the store: {e}"))?;
        return Ok(vec![id]);
    }
    let looks_like_address = (target.starts_with('+') && target.len() > 7)
        || (target.contains('@') && !target.starts_with('@'));
    if !looks_like_address {
        return Err(format!(
            "`{target}` is neither a room nor a +phone or email address."
        ));
    }
    let found = store
        .customers_by_address(&target)
        .await
        .map_err(|e| format!("Cannot read the store: {e}"))?;
    if found.is_empty() {
        return Err(format!("No customer has written from `{target}`."));
    }
    Ok(found)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `unlink`: this conversation's contact is not the same person as the customer's other
/// contacts; it becomes a customer of its own (automatic matching leaves it be).
pub async fn unlink(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, customer)) = of_portal(ctx).await? else {
        return Ok(());
    };
    if customer.contacts.len() < 2 {
        return ctx
            .reply("This customer has no other contact to unlink from.")
            .await;
    }
    match ctx
        .bridge
        .store
        .unlink_contact(&conversation.channel, &conversation.contact_id, ctx.sender)
        .await
    {
        Ok(_) => {
            ctx.reply(&format!(
                "Unlinked by {}: this {} contact is a customer of its own now.",
                ctx.sender, conversation.channel
            ))
            .await
        }
        Err(e) => ctx.reply(&format!("Cannot unlink: {e}")).await,
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn matrix_to_links_are_decoded() {
        assert_eq!(
            percent_decode("%23sb_sms_1%3Aexample.com"),
            "#sb_sms_1:example.com"
        );
        assert_eq!(percent_decode("!abc"), "!abc");
        assert_eq!(percent_decode("bad%2"), "bad%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
