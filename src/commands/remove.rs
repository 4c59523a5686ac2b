//! `remove`: take a remote person out of a group conversation (`Inbound::group`): their ghost
//! leaves the room and answers no longer reach them (no more Cc on an email thread) until
//! they write again. Without an argument it lists who answers go to now.
//!
//! Removing someone's ghost from the room by hand (a room admin's kick) does the same
//! ([`crate::relay::matrix_to_outbox`]); the command is for operators, who have no power to
//! kick in a portal.

use super::Context;
use crate::matrix::MatrixError;
use crate::portal::customer_name;
use crate::store::conversations::Contact;

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, _)) = ctx.portal().await? else {
        return Ok(());
    };
    let store = &ctx.bridge.store;
    let ids = match store.group_participants(conversation.id).await {
        Ok(ids) => ids,
        Err(e) => return ctx.reply(&format!("Not done: {e}")).await,
    };
    let mut people: Vec<Contact> = Vec::new();
    for id in &ids {
        if let Ok(Some(c)) = store.contact(&conversation.channel, id).await {
            people.push(c);
        }
    }
    if people.is_empty() {
        return ctx
            .reply("This conversation is not a group: there is no one to remove.")
            .await;
    }
    let shown = |c: &Contact| {
        let name = customer_name(c);
        if name == c.contact_id {
            name
        } else {
            format!("{name} ({})", c.contact_id)
        }
    };
    let wanted = ctx.args.trim();
    if wanted.is_empty() {
        let list: Vec<String> = people.iter().map(shown).collect();
        return ctx
            .reply(&format!(
                "Answers go to: {}. `remove <address or name>` takes someone out.",
                list.join(", ")
            ))
            .await;
    }
    let matches: Vec<&Contact> = people
        .iter()
        .filter(|c| {
            c.contact_id.eq_ignore_ascii_case(wanted)
                || c.ghost_user_id == wanted
                || customer_name(c).to_lowercase() == wanted.to_lowercase()
        })
        .collect();
    let person = match matches.as_slice() {
        [one] => *one,
        [] => {
            return ctx
                .reply(&format!(
                    "No one called {wanted} is in this conversation. `remove` lists who is."
                ))
                .await
        }
        _ => {
            return ctx
                .reply(&format!(
                    "Several people are called {wanted}; give their address or id."
                ))
                .await
        }
    };
    if let Err(e) = store
        .participant_remove(conversation.id, &person.contact_id)
        .await
    {
        return ctx.reply(&format!("Not done: {e}")).await;
    }
    if let Err(e) = ctx
        .bridge
        .homeserver
        .kick(ctx.room_id, &person.ghost_user_id, "removed by an operator")
        .await
    {
        tracing::info!(ghost = person.ghost_user_id, error = %e, "removed ghost not kicked");
    }
    ctx.reply(&format!(
        "{} is removed from this conversation: answers no longer go to them, until they write again.",
        shown(person)
    ))
    .await
}
