//! Canned replies: prepared answers an operator sends with `!sb t <name> [key=value…]` or by
//! writing `::name` inside a message. This is the service layer for them: the chat commands
//! (`src/commands/canned.rs`, `src/commands/t.rs`, the relay's `::name` expansion) call these
//! functions, and the permission checks live here, once.
//!
//! - **Scopes**: a reply is personal (only its owner sees and edits it), a team's (its members
//!   see it, its leads and admins edit it) or everyone's (admins edit it). When several scopes
//!   have a reply of the same name, the most specific wins: personal, then the conversation's
//!   team, then the operator's other teams, then everyone's.
//! - **Languages**: each reply has variants per language; the customer's language is the one an
//!   operator tagged them with (`!sb tag lang-ru`) or the one asked for (`lang=ru`). Without a
//!   variant in that language the default variant (no language) is used.
//! - **Variables**: the body is a minijinja template with *strict* undefined variables. The
//!   variables are the customer's `customer_name` and `first_name`, the `operator_name`, the
//!   `team`, the `company` (`bridge.company`), the conversation's `number`, the `channel`, and
//!   any `key=value` the operator gives (which also fill or override the others). A reply naming
//!   a variable that has no value is refused before anything is queued, naming the variable.
//! - **Files**: a variant may carry files (`!sb canned attach <name>` in reply to a file message,
//!   [`attach`]); they are sent with the text through the outbox. The files stay in the
//!   homeserver's media repository (where the core keeps every file) and the reply keeps their
//!   references. A file over the channel's `max_file_size` refuses the reply before anything is
//!   queued, naming the file and the limit ([`check_files`]).

use std::collections::{BTreeMap, BTreeSet};

use switchboard_channel::Attachment;

use crate::bridge::Bridge;
use crate::config::Level;
use crate::store::canned::{CannedRow, Scope};
use crate::store::conversations::Conversation;
use crate::store::StoreError;

/// Why a canned reply could not be changed, found or rendered. The text is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum CannedError {
    #[error("{0}")]
    Denied(String),
    #[error("no canned reply `{0}` that you can use")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// Variables the reply names that have no value here (sorted).
    #[error("{}", missing_text(.name, .variables))]
    Missing {
        name: String,
        variables: Vec<String>,
    },
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

fn missing_text(name: &str, variables: &[String]) -> String {
    let list = variables
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let what = if variables.len() == 1 {
        "variable"
    } else {
        "variables"
    };
    let example = variables
        .first()
        .map(|v| format!(" (give it as `{v}=…`)"))
        .unwrap_or_default();
    format!("canned reply `{name}` needs the {what} {list}, which has no value here{example}")
}

/// A canned reply's name: lowercase letters, digits, `-` and `_`, 1 to 40 of them.
pub fn valid_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A language code as a variant is keyed: `ru`, `en`, `pt-br` (lowercase, 2 to 8 characters).
pub fn normalize_language(raw: &str) -> Option<String> {
    let code = raw.trim().to_lowercase().replace('_', "-");
    let ok = (2..=8).contains(&code.len())
        && code.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        && code.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    ok.then_some(code)
}

/// The teams `user` belongs to (member or lead) and those it leads.
async fn teams_of(bridge: &Bridge, user: &str) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let (mut member, mut lead) = (Vec::new(), Vec::new());
    for team in bridge.teams.iter() {
        for (u, is_lead) in crate::routing::teams::members(bridge, team).await? {
            if u == user {
                member.push(team.name.clone());
                if is_lead {
                    lead.push(team.name.clone());
                }
            }
        }
    }
    Ok((member, lead))
}

/// Whether `actor` (at `level`) may add, edit or remove replies in `scope`: the owner for
/// personal ones, the team's leads and admins for a team's, admins for everyone's.
pub async fn may_edit(
    bridge: &Bridge,
    actor: &str,
    level: Level,
    scope: &Scope,
) -> Result<(), CannedError> {
    match scope {
        Scope::Personal(owner) if owner == actor => Ok(()),
        Scope::Personal(owner) => Err(CannedError::Denied(format!(
            "only {owner} changes their personal canned replies"
        ))),
        Scope::Team(team) => {
            if bridge.teams.get(team).is_none() {
                return Err(CannedError::Invalid(format!("there is no team `{team}`")));
            }
            if level >= Level::Admin || teams_of(bridge, actor).await?.1.contains(team) {
                Ok(())
            } else {
                Err(CannedError::Denied(format!(
                    "only the leads of {team} and admins change its canned replies"
                )))
            }
        }
        Scope::Everyone if level >= Level::Admin => Ok(()),
        Scope::Everyone => Err(CannedError::Denied(
            "only admins change the canned replies for everyone".into(),
        )),
    }
}

/// Whether `actor` may use (see, send) replies in `scope`.
async fn may_use(bridge: &Bridge, actor: &str, level: Level, scope: &Scope) -> bool {
    match scope {
        Scope::Personal(owner) => owner == actor,
        Scope::Team(team) => {
            level >= Level::Admin
                || teams_of(bridge, actor)
                    .await
                    .is_ok_and(|(member, _)| member.contains(team))
        }
        Scope::Everyone => true,
    }
}

/// Check a body before storing it: it must be a template minijinja reads.
fn check_body(body: &str) -> Result<(), CannedError> {
    if body.trim().is_empty() {
        return Err(CannedError::Invalid("the reply's text is empty".into()));
    }
    environment()
        .template_from_str(body)
        .map(|_| ())
        .map_err(|e| CannedError::Invalid(format!("the text is not a valid template: {e}")))
}

/// Store a new reply variant (`add`) or change an existing one (`edit`).
pub async fn save(
    bridge: &Bridge,
    actor: &str,
    level: Level,
    row: CannedRow,
    new: bool,
) -> Result<(), CannedError> {
    if !valid_name(&row.name) {
        return Err(CannedError::Invalid(format!(
            "`{}` is not a canned reply name (lowercase letters, digits, - and _, at most 40)",
            row.name
        )));
    }
    may_edit(bridge, actor, level, &row.scope).await?;
    check_body(&row.body)?;
    let lang = if row.language.is_empty() {
        String::new()
    } else {
        format!(" ({})", row.language)
    };
    if new {
        if !bridge.store.canned_insert(&row).await? {
            return Err(CannedError::Invalid(format!(
                "`{}`{lang} exists already in scope {}: use `edit`",
                row.name, row.scope
            )));
        }
    } else if !bridge
        .store
        .canned_update(&with_kept_files(bridge, row.clone()).await?)
        .await?
    {
        return Err(CannedError::Invalid(format!(
            "there is no `{}`{lang} in scope {} to edit: use `add`",
            row.name, row.scope
        )));
    }
    Ok(())
}

/// An edit without files of its own keeps the files the variant carries (they are attached
/// and removed with `attach` / `detach`, never lost by changing the text).
async fn with_kept_files(bridge: &Bridge, mut row: CannedRow) -> Result<CannedRow, StoreError> {
    if row.attachment.is_none() {
        row.attachment = bridge
            .store
            .canned_named(&row.name)
            .await?
            .into_iter()
            .find(|r| r.scope == row.scope && r.language == row.language)
            .and_then(|r| r.attachment);
    }
    Ok(row)
}

/// Remove a reply (one language variant, or all of them); how many variants went.
pub async fn remove(
    bridge: &Bridge,
    actor: &str,
    level: Level,
    scope: &Scope,
    name: &str,
    language: Option<&str>,
) -> Result<u64, CannedError> {
    may_edit(bridge, actor, level, scope).await?;
    match bridge.store.canned_remove(scope, name, language).await? {
        0 => Err(CannedError::NotFound(name.to_string())),
        n => Ok(n),
    }
}

/// Every reply variant `actor` may use, by name.
pub async fn visible(
    bridge: &Bridge,
    actor: &str,
    level: Level,
) -> Result<Vec<CannedRow>, CannedError> {
    let mut out = Vec::new();
    for row in bridge.store.canned_all().await? {
        if may_use(bridge, actor, level, &row.scope).await {
            out.push(row);
        }
    }
    Ok(out)
}

/// The variant of reply `name` to send in a conversation of `team` to a customer speaking
/// `language`: the most specific scope `actor` may use, then the language's variant, else the
/// default one, else the only one.
pub async fn choose(
    bridge: &Bridge,
    actor: &str,
    level: Level,
    team: Option<&str>,
    name: &str,
    language: Option<&str>,
) -> Result<CannedRow, CannedError> {
    let (my_teams, _) = teams_of(bridge, actor).await?;
    let rank = |scope: &Scope| match scope {
        Scope::Personal(_) => 0,
        Scope::Team(t) if Some(t.as_str()) == team => 1,
        Scope::Team(t) if my_teams.contains(t) => 2,
        Scope::Team(_) => 3,
        Scope::Everyone => 4,
    };
    let mut usable = Vec::new();
    for row in bridge.store.canned_named(name).await? {
        if may_use(bridge, actor, level, &row.scope).await {
            usable.push(row);
        }
    }
    let Some(best) = usable.iter().map(|r| rank(&r.scope)).min() else {
        return Err(CannedError::NotFound(name.to_string()));
    };
    let variants: Vec<CannedRow> = usable
        .into_iter()
        .filter(|r| rank(&r.scope) == best)
        .collect();
    let pick = language
        .and_then(|l| variants.iter().find(|r| r.language == l))
        .or_else(|| variants.iter().find(|r| r.language.is_empty()))
        .or_else(|| (variants.len() == 1).then(|| &variants[0]));
    match pick {
        Some(row) => Ok(row.clone()),
        None => {
            let langs: Vec<&str> = variants.iter().map(|r| r.language.as_str()).collect();
            Err(CannedError::Invalid(format!(
                "`{name}` has no variant for {} and no default; it has {}: add `lang=…`",
                language.unwrap_or("an unknown language"),
                langs.join(", ")
            )))
        }
    }
}

/// The template environment: strict undefined variables (a variable with no value is an error,
/// never an empty string), no HTML auto-escaping (replies are plain text).
fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

/// Render `row`'s body with `vars`. Variables the body names that `vars` lacks are refused
/// before rendering, all of them named ([`CannedError::Missing`]); the strict environment also
/// refuses anything undefined the check could not see (an attribute of a variable).
pub fn render(row: &CannedRow, vars: &BTreeMap<String, String>) -> Result<String, CannedError> {
    let env = environment();
    let template = env.template_from_str(&row.body).map_err(|e| {
        CannedError::Invalid(format!("`{}` is not a valid template: {e}", row.name))
    })?;
    let missing: BTreeSet<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !vars.contains_key(v))
        .collect();
    if !missing.is_empty() {
        return Err(CannedError::Missing {
            name: row.name.clone(),
            variables: missing.into_iter().collect(),
        });
    }
    template
        .render(vars)
        .map_err(|e| CannedError::Invalid(format!("`{}` cannot be filled in: {e}", row.name)))
}

/// The most files one reply variant carries.
pub const MAX_FILES: usize = 10;

/// The files stored with a reply variant, in the order they were attached. The column holds a
/// JSON array of [`Attachment`]s (an older single object reads as one file).
pub fn attachments(row: &CannedRow) -> Vec<Attachment> {
    let Some(json) = row.attachment.as_deref() else {
        return Vec::new();
    };
    serde_json::from_str::<Vec<Attachment>>(json)
        .or_else(|_| serde_json::from_str::<Attachment>(json).map(|a| vec![a]))
        .unwrap_or_default()
}

/// The column value for `files`: `None` when there are none.
fn encode_attachments(files: &[Attachment]) -> Option<String> {
    (!files.is_empty()).then(|| serde_json::to_string(files).unwrap_or_default())
}

/// A file's size for people: `800 B`, `64.0 KB`, `2.5 MB`.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// Whether the files of reply `name` can go out on a channel that takes files up to
/// `max_file_size`: the refusal names the file, its size and the channel's limit, so the
/// operator knows to send the reply elsewhere or without it, before anything is queued.
pub fn check_files(
    name: &str,
    files: &[Attachment],
    channel: &str,
    max_file_size: Option<u64>,
) -> Result<(), String> {
    let Some(max) = max_file_size else {
        return Ok(());
    };
    match files.iter().find(|a| a.size > max) {
        Some(a) => Err(format!(
            "canned reply `{name}` carries the file {} ({}) but {channel} takes files of at most {}",
            a.name,
            human_size(a.size),
            human_size(max)
        )),
        None => Ok(()),
    }
}

/// The variants of reply `name` in `scope` that `language` means: that one, or every variant
/// when no language is given. Refused when there is none.
async fn variants_in(
    bridge: &Bridge,
    scope: &Scope,
    name: &str,
    language: Option<&str>,
) -> Result<Vec<CannedRow>, CannedError> {
    let rows: Vec<CannedRow> = bridge
        .store
        .canned_named(name)
        .await?
        .into_iter()
        .filter(|r| &r.scope == scope && language.is_none_or(|l| r.language == l))
        .collect();
    if rows.is_empty() {
        return Err(CannedError::NotFound(name.to_string()));
    }
    Ok(rows)
}

/// Attach `files` to reply `name` in `scope` (one language variant, or all of them when no
/// language is given), after those it has. The files stay where the homeserver stored them
/// (the media repository, the core's media store); the reply keeps their references. Returns
/// how many variants now carry them.
pub async fn attach(
    bridge: &Bridge,
    actor: &str,
    level: Level,
    scope: &Scope,
    name: &str,
    language: Option<&str>,
    files: &[Attachment],
) -> Result<usize, CannedError> {
    may_edit(bridge, actor, level, scope).await?;
    let rows = variants_in(bridge, scope, name, language).await?;
    for row in &rows {
        let mut all = attachments(row);
        all.extend(files.iter().cloned());
        if all.len() > MAX_FILES {
            return Err(CannedError::Invalid(format!(
                "`{name}` would carry {} files; a reply carries at most {MAX_FILES}",
                all.len()
            )));
        }
    }
    for mut row in rows.clone() {
        let mut all = attachments(&row);
        all.extend(files.iter().cloned());
        row.attachment = encode_attachments(&all);
        row.updated_by = actor.to_string();
        bridge.store.canned_update(&row).await?;
    }
    Ok(rows.len())
}

/// Remove every file from reply `name` in `scope` (one variant, or all); returns how many
/// files went.
pub async fn detach(
    bridge: &Bridge,
    actor: &str,
    level: Level,
    scope: &Scope,
    name: &str,
    language: Option<&str>,
) -> Result<usize, CannedError> {
    may_edit(bridge, actor, level, scope).await?;
    let mut removed = 0;
    for mut row in variants_in(bridge, scope, name, language).await? {
        removed += attachments(&row).len();
        row.attachment = None;
        row.updated_by = actor.to_string();
        bridge.store.canned_update(&row).await?;
    }
    Ok(removed)
}

/// What a reply in `conversation` may name, from what the bridge knows (a value it does not know,
/// such as a customer who gave no name, is left out, so a reply naming it is refused), then the
/// operator's `args` over them.
pub async fn variables(
    bridge: &Bridge,
    conversation: &Conversation,
    operator: &str,
    team: Option<&str>,
    args: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, CannedError> {
    let mut vars = BTreeMap::new();
    let contact = bridge
        .store
        .contact(&conversation.channel, &conversation.contact_id)
        .await?;
    if let Some(name) = contact
        .and_then(|c| c.display_name)
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
    {
        if let Some(first) = name.split_whitespace().next() {
            vars.insert("first_name".into(), first.to_string());
        }
        vars.insert("customer_name".into(), name);
    }
    let operator_name = bridge
        .homeserver
        .displayname(operator)
        .await
        .ok()
        .flatten()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| crate::relay::matrix_to_outbox::operator_name(operator));
    vars.insert("operator_name".into(), operator_name);
    if let Some(team) = team {
        vars.insert("team".into(), team.to_string());
    }
    if let Some(company) = bridge
        .config
        .bridge
        .company
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        vars.insert("company".into(), company.to_string());
    }
    vars.insert("number".into(), conversation.id.to_string());
    vars.insert("channel".into(), conversation.channel.clone());
    for (k, v) in args {
        vars.insert(k.clone(), v.clone());
    }
    Ok(vars)
}

/// The customer's language, when known: an operator's `lang-<code>` tag on the customer.
pub async fn customer_language(
    bridge: &Bridge,
    conversation: &Conversation,
) -> Result<Option<String>, CannedError> {
    let customer = bridge
        .store
        .customer_of(&conversation.channel, &conversation.contact_id)
        .await?;
    Ok(bridge
        .store
        .customer_tags(customer)
        .await?
        .iter()
        .find_map(|t| t.strip_prefix("lang-").and_then(normalize_language)))
}

/// A reply chosen and filled in for one conversation.
#[derive(Debug)]
pub struct Rendered {
    pub text: String,
    pub attachments: Vec<Attachment>,
}

/// Choose and fill in reply `name` for `conversation`, as `operator` sends it.
pub async fn prepare(
    bridge: &Bridge,
    conversation: &Conversation,
    operator: &str,
    level: Level,
    name: &str,
    language: Option<&str>,
    args: &BTreeMap<String, String>,
) -> Result<Rendered, CannedError> {
    let team = bridge
        .store
        .routing(conversation.id)
        .await?
        .and_then(|r| r.team);
    let language = match language {
        Some(l) => Some(l.to_string()),
        None => customer_language(bridge, conversation).await?,
    };
    let row = choose(
        bridge,
        operator,
        level,
        team.as_deref(),
        name,
        language.as_deref(),
    )
    .await?;
    let vars = variables(bridge, conversation, operator, team.as_deref(), args).await?;
    Ok(Rendered {
        text: render(&row, &vars)?,
        attachments: attachments(&row),
    })
}

/// The `::name` references in an operator's message: at the start or after whitespace, a name
/// as [`valid_name`] allows. Returns (byte range, name) pairs in order.
pub fn references(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let mut search = 0;
    while let Some(pos) = text[search..].find("::") {
        let start = search + pos;
        let after_space = text[..start]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        let name_len = text[start + 2..]
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
            .unwrap_or(text.len() - start - 2);
        let name = &text[start + 2..start + 2 + name_len];
        if after_space && valid_name(name) {
            out.push((start..start + 2 + name_len, name.to_string()));
            search = start + 2 + name_len;
        } else {
            search = start + 2;
        }
    }
    out
}

/// An operator's message with its `::name` references filled in.
#[derive(Debug)]
pub struct Expansion {
    pub text: String,
    /// The message's HTML with the same references filled in (escaped); `None` when it had none
    /// or its references differ from the plain text's (then the plain text is what goes out).
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
}

/// Expand every `::name` in an operator's message (`text`, and `html` when it has one).
/// `Ok(None)`: the message names none. An unknown name or a missing variable refuses the whole
/// message (nothing of it is sent), and so does a reply's file the channel cannot take
/// (`max_file_size`, see [`check_files`]).
#[allow(clippy::too_many_arguments)]
pub async fn expand(
    bridge: &Bridge,
    conversation: &Conversation,
    operator: &str,
    level: Level,
    text: &str,
    html: Option<&str>,
    max_file_size: Option<u64>,
) -> Result<Option<Expansion>, CannedError> {
    let refs = references(text);
    if refs.is_empty() {
        return Ok(None);
    }
    let none = BTreeMap::new();
    let mut filled: BTreeMap<String, Rendered> = BTreeMap::new();
    for (_, name) in &refs {
        if !filled.contains_key(name) {
            let r = prepare(bridge, conversation, operator, level, name, None, &none).await?;
            check_files(name, &r.attachments, &conversation.channel, max_file_size)
                .map_err(CannedError::Invalid)?;
            filled.insert(name.clone(), r);
        }
    }
    let splice = |source: &str, refs: &[(std::ops::Range<usize>, String)], html: bool| {
        let mut out = String::with_capacity(source.len());
        let mut last = 0;
        for (range, name) in refs {
            out.push_str(&source[last..range.start]);
            let t = filled.get(name).map_or("", |r| r.text.as_str());
            if html {
                out.push_str(&switchboard_kit::text::escape_html(t).replace('\n', "<br>"));
            } else {
                out.push_str(t);
            }
            last = range.end;
        }
        out.push_str(&source[last..]);
        out
    };
    let html = html.and_then(|h| {
        let html_refs = references(h);
        let same = html_refs
            .iter()
            .map(|(_, n)| n)
            .eq(refs.iter().map(|(_, n)| n));
        same.then(|| splice(h, &html_refs, true))
    });
    let text = splice(text, &refs, false);
    // Each reply's files once, however often it is named.
    let mut attachments = Vec::new();
    for (_, name) in &refs {
        if let Some(r) = filled.get_mut(name) {
            attachments.append(&mut r.attachments);
        }
    }
    Ok(Some(Expansion {
        text,
        html,
        attachments,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(body: &str) -> CannedRow {
        CannedRow {
            scope: Scope::Everyone,
            name: "greeting".into(),
            language: String::new(),
            body: body.into(),
            attachment: None,
            updated_by: "@a:x".into(),
            updated_at: 0,
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fills_variables_and_keeps_text_as_written() {
        let text = render(
            &row("Здравствуйте, {{ first_name }}! <b>{{ operator_name }}</b> из {{ company }}"),
            &vars(&[
                ("first_name", "Анна"),
                ("operator_name", "Bob"),
                ("company", "ACME"),
            ]),
        )
        .unwrap();
        assert_eq!(text, "Здравствуйте, Анна! <b>Bob</b> из ACME");
    }

    #[test]
    fn names_every_missing_variable_and_renders_nothing() {
        let err = render(
            &row("Hi {{ first_name }}, order {{ order }} from {{ company }}"),
            &vars(&[("company", "ACME")]),
        )
        .unwrap_err();
        match &err {
            CannedError::Missing { variables, .. } => {
                assert_eq!(variables, &vec!["first_name".to_string(), "order".into()])
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("`first_name`, `order`"), "{err}");
        // Strict undefined also catches what the name check cannot see.
        let err = render(&row("{{ company.name }}"), &vars(&[("company", "ACME")])).unwrap_err();
        assert!(matches!(err, CannedError::Invalid(_)), "{err:?}");
        // A variable the template sets itself is not missing; a default filter does not hide
        // a missing one either.
        assert_eq!(
            render(&row("{% set x = 'a' %}{{ x }}"), &vars(&[])).unwrap(),
            "a"
        );
        assert!(render(&row("{{ order | default('?') }}"), &vars(&[])).is_err());
    }

    #[test]
    fn finds_references_only_where_a_word_starts() {
        let refs = references("::hello there ::price-list, std::vector a::b ::Bad ::");
        let names: Vec<&str> = refs.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, vec!["hello", "price-list"]);
        let text = "x ::a y";
        let (range, _) = &references(text)[0];
        assert_eq!(&text[range.clone()], "::a");
    }

    #[test]
    fn names_and_languages() {
        assert!(valid_name("greeting") && valid_name("price-list_2"));
        assert!(!valid_name("") && !valid_name("Hello") && !valid_name("a b"));
        assert_eq!(normalize_language("pt_BR").as_deref(), Some("pt-br"));
        assert_eq!(normalize_language("RU").as_deref(), Some("ru"));
        assert_eq!(normalize_language("1"), None);
    }
}
