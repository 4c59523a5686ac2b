//! `canned add|edit|remove|list|show`: manage canned replies (sent with `t <name>` or `::name`).
//!
//! `add <name> [scope=personal|everyone|<team>] [lang=<code>] <text…>` stores a reply (personal
//! unless a scope is given); the text is a template (`{{ first_name }}`, see [`crate::canned`])
//! and runs to the end of the message, lines included. `edit` takes the same form and replaces
//! the text; `remove <name> [scope=…] [lang=…]` removes one variant or all of them. Who may
//! change what is decided in [`crate::canned::may_edit`].
//!
//! `attach <name> [scope=…] [lang=…]`, written as a reply to a file message (best in a lobby or
//! the DM with the bot, where the file itself goes to no customer), adds that file to the reply
//! (every language variant unless `lang=` says one); `detach <name> [scope=…] [lang=…]` removes
//! the reply's files.

use super::Context;
use crate::canned::{self, normalize_language, CannedError};
use crate::config::Level;
use crate::matrix::{content, MatrixError};
use crate::store::canned::{CannedRow, Scope};
use switchboard_channel::Attachment;

const USAGE: &str = "Usage: `!sb canned add|edit <name> [scope=personal|everyone|<team>] [lang=<code>] <text…>`, `!sb canned attach <name> [scope=…] [lang=…]` (in reply to a file message), `!sb canned detach <name> [scope=…] [lang=…]`, `!sb canned remove <name> [scope=…] [lang=…]`, `!sb canned list`, `!sb canned show <name>`.";

/// The options before a reply's text, and the text (as written, lines kept).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub name: String,
    pub scope: Option<String>,
    pub language: Option<String>,
    pub text: String,
}

/// Split `<name> [scope=…] [lang=…] <text…>`.
pub fn parse(args: &str) -> Parsed {
    let mut rest = args.trim_start();
    let next_word = |rest: &mut &str| -> String {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = rest[..end].to_string();
        *rest = rest[end..].trim_start();
        word
    };
    let mut parsed = Parsed {
        name: next_word(&mut rest).to_lowercase(),
        ..Default::default()
    };
    loop {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        if let Some(v) = word
            .strip_prefix("scope=")
            .filter(|_| parsed.scope.is_none())
        {
            parsed.scope = Some(v.to_string());
        } else if let Some(v) = word
            .strip_prefix("lang=")
            .filter(|_| parsed.language.is_none())
        {
            parsed.language = Some(v.to_string());
        } else {
            break;
        }
        rest = rest[end..].trim_start();
    }
    parsed.text = rest.trim_end().to_string();
    parsed
}

fn scope_of(ctx: &Context<'_>, word: &str) -> Result<Scope, String> {
    match word {
        "personal" | "me" => Ok(Scope::Personal(ctx.sender.to_string())),
        "everyone" | "all" => Ok(Scope::Everyone),
        team if ctx.bridge.teams.get(team).is_some() => Ok(Scope::Team(team.to_string())),
        other => Err(format!(
            "`scope={other}`: say personal, everyone or a team's name"
        )),
    }
}

fn language_of(word: Option<&str>) -> Result<Option<String>, String> {
    match word {
        None => Ok(None),
        Some(w) => normalize_language(w)
            .map(Some)
            .ok_or_else(|| format!("`lang={w}` is not a language code (`en`, `ru`, `pt-br`)")),
    }
}

pub async fn run(ctx: &Context<'_>, level: Level) -> Result<(), MatrixError> {
    let (verb, args) = ctx
        .args
        .trim_start()
        .split_once(char::is_whitespace)
        .unwrap_or((ctx.args.trim(), ""));
    let answer = match verb.to_lowercase().as_str() {
        "add" | "edit" => save(ctx, level, args, verb.eq_ignore_ascii_case("add")).await,
        "remove" => remove(ctx, level, args).await,
        "attach" => attach(ctx, level, args).await,
        "detach" => detach(ctx, level, args).await,
        "list" => list(ctx, level).await,
        "show" => show(ctx, level, args).await,
        _ => Ok(USAGE.to_string()),
    };
    match answer {
        Ok(text) => ctx.reply(&text).await,
        Err(e) => ctx.reply(&format!("Not done: {e}.")).await,
    }
}

/// The scope a command means: the one given, else (for `edit`/`remove`) the one scope where the
/// operator may change a reply of that name, else personal.
async fn scope_for_change(
    ctx: &Context<'_>,
    level: Level,
    parsed: &Parsed,
    new: bool,
) -> Result<Scope, CannedError> {
    if let Some(word) = &parsed.scope {
        return scope_of(ctx, word).map_err(CannedError::Invalid);
    }
    if new {
        return Ok(Scope::Personal(ctx.sender.to_string()));
    }
    let mut scopes: Vec<Scope> = canned::visible(ctx.bridge, ctx.sender, level)
        .await?
        .into_iter()
        .filter(|r| r.name == parsed.name)
        .map(|r| r.scope)
        .collect();
    scopes.dedup();
    match scopes.len() {
        0 => Err(CannedError::NotFound(parsed.name.clone())),
        1 => Ok(scopes.remove(0)),
        _ => Err(CannedError::Invalid(format!(
            "`{}` exists in several scopes ({}): say which with `scope=`",
            parsed.name,
            scopes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn save(
    ctx: &Context<'_>,
    level: Level,
    args: &str,
    new: bool,
) -> Result<String, CannedError> {
    let parsed = parse(args);
    if parsed.name.is_empty() || parsed.text.is_empty() {
        return Err(CannedError::Invalid(
            USAGE.trim_end_matches('.').to_string(),
        ));
    }
    let language = language_of(parsed.language.as_deref()).map_err(CannedError::Invalid)?;
    let scope = scope_for_change(ctx, level, &parsed, new).await?;
    let row = CannedRow {
        scope: scope.clone(),
        name: parsed.name.clone(),
        language: language.clone().unwrap_or_default(),
        body: parsed.text,
        attachment: None,
        updated_by: ctx.sender.to_string(),
        updated_at: 0,
    };
    canned::save(ctx.bridge, ctx.sender, level, row, new).await?;
    let lang = language.map(|l| format!(" ({l})")).unwrap_or_default();
    let verb = if new { "added" } else { "changed" };
    Ok(format!(
        "Canned reply `{}`{lang} {verb} ({scope}). Send it with `!sb t {}` or `::{}`.",
        parsed.name, parsed.name, parsed.name
    ))
}

/// What `remove`, `attach` and `detach` act on: a reply's name (and no text), its language and
/// the scope meant; `usage` is the answer to a call without a name.
async fn existing_target(
    ctx: &Context<'_>,
    level: Level,
    args: &str,
    usage: &str,
) -> Result<(Parsed, Option<String>, Scope), CannedError> {
    let parsed = parse(args);
    if parsed.name.is_empty() || !parsed.text.is_empty() {
        return Err(CannedError::Invalid(usage.into()));
    }
    let language = language_of(parsed.language.as_deref()).map_err(CannedError::Invalid)?;
    let scope = scope_for_change(ctx, level, &parsed, false).await?;
    Ok((parsed, language, scope))
}

async fn remove(ctx: &Context<'_>, level: Level, args: &str) -> Result<String, CannedError> {
    let (parsed, language, scope) = existing_target(
        ctx,
        level,
        args,
        "say `!sb canned remove <name> [scope=…] [lang=…]`",
    )
    .await?;
    let n = canned::remove(
        ctx.bridge,
        ctx.sender,
        level,
        &scope,
        &parsed.name,
        language.as_deref(),
    )
    .await?;
    let variants = if n == 1 { "variant" } else { "variants" };
    Ok(format!(
        "Canned reply `{}` removed ({scope}; {n} {variants}).",
        parsed.name
    ))
}

/// The file of the message the command replies to, as the bot reads it from the homeserver.
async fn replied_file(ctx: &Context<'_>) -> Result<Attachment, CannedError> {
    let how = "write `!sb canned attach <name>` as a reply to a message with the file";
    let Some(target) = ctx.reply_to else {
        return Err(CannedError::Invalid(how.into()));
    };
    let event = ctx
        .bridge
        .homeserver
        .event(ctx.room_id, target)
        .await
        .map_err(|e| CannedError::Invalid(format!("cannot read the file's message: {e}")))?
        .ok_or_else(|| CannedError::Invalid(format!("cannot see that message; {how}")))?;
    let body = event.get("content").cloned().unwrap_or_default();
    let parsed =
        content::parse_operator_message(&body).map_err(|e| CannedError::Invalid(e.to_string()))?;
    let mut file = parsed
        .and_then(|m| m.content.attachments.into_iter().next())
        .ok_or_else(|| CannedError::Invalid(format!("that message has no file; {how}")))?;
    if file.size == 0 {
        // The client did not say how big it is: measure it once, so channels' limits apply.
        let (bytes, _) = ctx
            .bridge
            .homeserver
            .download(&file.media.0, MAX_MEASURED)
            .await
            .map_err(|e| CannedError::Invalid(format!("cannot fetch the file: {e}")))?;
        file.size = bytes.len() as u64;
    }
    Ok(file)
}

/// The largest file whose size the bridge measures itself (when the client did not give it).
const MAX_MEASURED: u64 = 100 * 1024 * 1024;

async fn attach(ctx: &Context<'_>, level: Level, args: &str) -> Result<String, CannedError> {
    let (parsed, language, scope) = existing_target(
        ctx,
        level,
        args,
        "say `!sb canned attach <name> [scope=…] [lang=…]` in reply to a file",
    )
    .await?;
    // Permission first: nobody learns anything of a reply they may not change.
    canned::may_edit(ctx.bridge, ctx.sender, level, &scope).await?;
    let file = replied_file(ctx).await?;
    let variants = canned::attach(
        ctx.bridge,
        ctx.sender,
        level,
        &scope,
        &parsed.name,
        language.as_deref(),
        std::slice::from_ref(&file),
    )
    .await?;
    let which = if variants == 1 {
        "1 variant".to_string()
    } else {
        format!("{variants} variants")
    };
    Ok(format!(
        "File {} ({}) attached to canned reply `{}` ({scope}; {which}); it goes out with the reply.",
        file.name,
        canned::human_size(file.size),
        parsed.name
    ))
}

async fn detach(ctx: &Context<'_>, level: Level, args: &str) -> Result<String, CannedError> {
    let (parsed, language, scope) = existing_target(
        ctx,
        level,
        args,
        "say `!sb canned detach <name> [scope=…] [lang=…]`",
    )
    .await?;
    let n = canned::detach(
        ctx.bridge,
        ctx.sender,
        level,
        &scope,
        &parsed.name,
        language.as_deref(),
    )
    .await?;
    let files = if n == 1 { "file" } else { "files" };
    Ok(format!(
        "Canned reply `{}` ({scope}) carries no files now ({n} {files} removed).",
        parsed.name
    ))
}

async fn list(ctx: &Context<'_>, level: Level) -> Result<String, CannedError> {
    let rows = canned::visible(ctx.bridge, ctx.sender, level).await?;
    if rows.is_empty() {
        return Ok("No canned replies yet: `!sb canned add <name> <text…>`.".into());
    }
    // One line per reply and scope, its languages beside it.
    let mut lines: Vec<String> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let (name, scope) = (&rows[i].name, &rows[i].scope);
        let mut langs = Vec::new();
        let first = first_line(&rows[i].body);
        while i < rows.len() && &rows[i].name == name && &rows[i].scope == scope {
            langs.push(if rows[i].language.is_empty() {
                "default".to_string()
            } else {
                rows[i].language.clone()
            });
            i += 1;
        }
        lines.push(format!("{name} — {scope} [{}]: {first}", langs.join(", ")));
    }
    Ok(format!("Canned replies:\n{}", lines.join("\n")))
}

fn first_line(body: &str) -> String {
    let line = body.lines().next().unwrap_or("");
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_string()
    }
}

async fn show(ctx: &Context<'_>, level: Level, args: &str) -> Result<String, CannedError> {
    let name = args.trim().to_lowercase();
    let rows: Vec<CannedRow> = canned::visible(ctx.bridge, ctx.sender, level)
        .await?
        .into_iter()
        .filter(|r| r.name == name)
        .collect();
    if rows.is_empty() {
        return Err(CannedError::NotFound(name));
    }
    let parts: Vec<String> = rows
        .iter()
        .map(|r| {
            let lang = if r.language.is_empty() {
                "default"
            } else {
                r.language.as_str()
            };
            let files: Vec<String> = canned::attachments(r)
                .iter()
                .map(|a| format!("\n📎 {} ({})", a.name, canned::human_size(a.size)))
                .collect();
            format!(
                "`{}` — {} [{lang}], last changed by {}:\n{}{}",
                r.name,
                r.scope,
                r.updated_by,
                r.body,
                files.concat()
            )
        })
        .collect();
    Ok(parts.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_then_the_text_with_its_lines() {
        let p =
            parse("greeting scope=support lang=ru Здравствуйте, {{ first_name }}!\nЧем помочь?");
        assert_eq!(p.name, "greeting");
        assert_eq!(p.scope.as_deref(), Some("support"));
        assert_eq!(p.language.as_deref(), Some("ru"));
        assert_eq!(p.text, "Здравствуйте, {{ first_name }}!\nЧем помочь?");
        // Options only lead the text: later `lang=` is text.
        let p = parse("x hello lang=ru");
        assert_eq!((p.language, p.text.as_str()), (None, "hello lang=ru"));
        assert_eq!(parse("").name, "");
    }
}
