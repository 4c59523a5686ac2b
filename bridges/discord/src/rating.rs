//! Rating questions (CSAT) on Discord: buttons under the bot's message, and the answer to a
//! press.
//!
//! * **The question** ([`payload`]): `POST /channels/{id}/messages` with the question as
//!   `content` and the choices as message components — action rows (type 1) of at most five
//!   buttons (type 2, style 2 SECONDARY), each labelled with the choice (at most 80 characters)
//!   and carrying the kit's rating payload as its `custom_id` (at most 100 characters, unique in
//!   the message). Five scores make one row.
//! * **A press** arrives as the gateway's `INTERACTION_CREATE` (type 3, MESSAGE_COMPONENT; read
//!   in [`crate::inbound`]), is stored like any event, and is then answered ([`answer`]) with
//!   `POST /interactions/{id}/{token}/callback` of type 7 UPDATE_MESSAGE: the message's own
//!   components with every button disabled and the pressed one PRIMARY, so the customer sees
//!   what they chose and cannot press again. Whether the press counts is the core's decision
//!   (a stale or repeated one does not); the buttons of a question that was pressed are done
//!   either way.
//! * **The 3-second rule**: Discord drops an interaction that is not answered within 3 seconds
//!   of its delivery (the customer sees "This interaction failed", and the callback is then
//!   404 10062 Unknown interaction). The press is stored first — a few milliseconds — so the
//!   answer is normally well inside that; when it was not (the store was down, the gateway's
//!   queue was long), the press still counts and the buttons are disabled by editing the
//!   message instead (`PATCH /channels/{id}/messages/{id}`), so the question does not stay
//!   pressable.

use serde_json::{json, Value};
use switchboard_channel::RatingRequest;
use switchboard_kit::rating;

use crate::inbound::Answer;
use crate::rest::{codes, RestError};
use crate::Shared;

/// Buttons per action row, and action rows per message
/// (<https://discord.com/developers/docs/components/reference#action-row>).
const PER_ROW: usize = 5;
const MAX_ROWS: usize = 5;

/// A message's buttons (<https://discord.com/developers/docs/components/reference#button>):
/// labels of at most 80 characters, `custom_id`s of at most 100.
const BUTTONS: rating::Buttons = rating::Buttons {
    message: "a Discord message",
    network: "Discord",
    max_buttons: PER_ROW * MAX_ROWS,
    max_label: 80,
    max_payload: 100,
};

/// Button styles.
const PRIMARY: u64 = 1;
const SECONDARY: u64 = 2;

/// Interaction callback types
/// (<https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object-interaction-callback-type>).
const DEFERRED_UPDATE_MESSAGE: u64 = 6;
const UPDATE_MESSAGE: u64 = 7;

/// The message body of a rating question (without `nonce`, which the caller adds): `content`
/// and the buttons.
pub fn payload(request: &RatingRequest) -> Result<Value, switchboard_channel::SendError> {
    BUTTONS.check(request)?;
    let rows: Vec<Value> = request
        .choices
        .chunks(PER_ROW)
        .map(|row| {
            let buttons: Vec<Value> = row
                .iter()
                .map(|c| {
                    json!({"type": 2, "style": SECONDARY, "label": c.label, "custom_id": c.payload})
                })
                .collect();
            json!({"type": 1, "components": buttons})
        })
        .collect();
    let question = crate::markdown::escape_markdown(&request.question);
    Ok(json!({
        "content": rating::clip(&question, crate::config::MAX_TEXT_CHARS, "⭐"),
        "components": rows,
        "allowed_mentions": {"parse": []},
    }))
}

/// The components of an answered question: every button disabled, the pressed one
/// (`custom_id` = `pressed`) PRIMARY and the others SECONDARY; anything else as it was.
pub fn answered(components: &Value, pressed: &str) -> Value {
    let mut components = components.clone();
    for row in components.as_array_mut().into_iter().flatten() {
        if row.get("type").and_then(Value::as_u64) != Some(1) {
            continue;
        }
        for button in row
            .get_mut("components")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if button.get("type").and_then(Value::as_u64) != Some(2) {
                continue;
            }
            let Some(id) = button.get("custom_id").and_then(Value::as_str) else {
                continue; // a link button
            };
            let style = if id == pressed { PRIMARY } else { SECONDARY };
            button["style"] = style.into();
            button["disabled"] = true.into();
        }
    }
    components
}

/// Answer a stored press (interaction `id` in `channel`, on a button whose `custom_id` is
/// `pressed`). Best effort: the press counts whatever happens here.
pub(crate) async fn answer(
    shared: &Shared,
    channel: &str,
    id: &str,
    pressed: &str,
    answer: &Answer,
) {
    let body = match &answer.message {
        Some((_, components)) if components.is_array() => json!({
            "type": UPDATE_MESSAGE,
            "data": {"components": answered(components, pressed)},
        }),
        // No message to update (Discord always sends it for a component; kept safe).
        _ => json!({"type": DEFERRED_UPDATE_MESSAGE}),
    };
    match shared
        .rest
        .interaction_callback(id, &answer.token, &body)
        .await
    {
        Ok(()) => {}
        Err(RestError::Api { error, .. }) if error.code == codes::ALREADY_ACKNOWLEDGED => {
            // A replay of a press answered before (after a resume).
            tracing::debug!(interaction = id, "discord: press already answered");
        }
        Err(e) => {
            tracing::info!(interaction = id, error = %e, "discord: cannot answer a button press; disabling its buttons by an edit");
            if let Some((message, components)) = &answer.message {
                let edit = json!({"components": answered(components, pressed)});
                if let Err(e) = shared.rest.edit_message(channel, message, &edit).await {
                    tracing::info!(error = %e, "discord: cannot disable the buttons of a rating question");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_choices_make_one_row_of_buttons() {
        let request = rating::request("How did we *really* do?", "a1B2c3D4e5F6g7H8");
        let body = payload(&request).unwrap();
        assert_eq!(body["content"], "How did we \\*really\\* do?");
        let rows = body["components"].as_array().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["type"], 1);
        let buttons = rows[0]["components"].as_array().unwrap();
        assert_eq!(buttons.len(), 5);
        assert_eq!(buttons[0]["label"], "1 ⭐");
        assert_eq!(buttons[4]["custom_id"], "sbr1:a1B2c3D4e5F6g7H8:5");
        assert!(buttons
            .iter()
            .all(|b| b["type"] == 2 && b["style"] == SECONDARY));
        // Six choices would take two rows; 26 do not fit a message.
        let mut six = request.clone();
        six.choices.push(request.choices[0].clone());
        assert_eq!(
            payload(&six).unwrap()["components"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let mut many = request.clone();
        while many.choices.len() <= 25 {
            many.choices.push(request.choices[0].clone());
        }
        assert!(payload(&many).is_err());
    }

    #[test]
    fn an_answered_question_has_its_buttons_disabled_and_the_choice_marked() {
        let request = rating::request("Q", "n");
        let sent = payload(&request).unwrap()["components"].clone();
        let done = answered(&sent, "sbr1:n:4");
        let buttons = done[0]["components"].as_array().unwrap();
        assert!(buttons.iter().all(|b| b["disabled"] == true));
        let styles: Vec<u64> = buttons.iter().filter_map(|b| b["style"].as_u64()).collect();
        assert_eq!(styles, [2, 2, 2, 1, 2]);
        assert_eq!(buttons[3]["label"], "4 ⭐⭐⭐⭐");
        // Garbage is left alone.
        assert_eq!(answered(&json!("x"), "p"), json!("x"));
    }
}
