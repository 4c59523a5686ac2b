//! Canned replies as stored (`canned_replies`): one row per scope, owner, name and language
//! variant. Who may change which row, and how a reply is chosen and rendered, is
//! [`crate::canned`]'s business; this module only reads and writes rows.

use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// Who a canned reply belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// One operator's own (the user id).
    Personal(String),
    /// A team's (the team's name).
    Team(String),
    /// Every operator's.
    Everyone,
}

impl Scope {
    /// `(scope, owner)` as stored.
    pub fn columns(&self) -> (&'static str, &str) {
        match self {
            Scope::Personal(user) => ("personal", user),
            Scope::Team(team) => ("team", team),
            Scope::Everyone => ("everyone", ""),
        }
    }

    fn from_columns(scope: &str, owner: String) -> Option<Scope> {
        match scope {
            "personal" => Some(Scope::Personal(owner)),
            "team" => Some(Scope::Team(owner)),
            "everyone" => Some(Scope::Everyone),
            _ => None,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Personal(user) => write!(f, "personal ({user})"),
            Scope::Team(team) => write!(f, "team {team}"),
            Scope::Everyone => write!(f, "everyone"),
        }
    }
}

/// One language variant of one canned reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CannedRow {
    pub scope: Scope,
    pub name: String,
    /// `""`: the variant for customers whose language is unknown or has no variant of its own.
    pub language: String,
    /// A minijinja template.
    pub body: String,
    /// JSON of a [`switchboard_channel::Attachment`] sent with the text.
    pub attachment: Option<String>,
    pub updated_by: String,
    pub updated_at: i64,
}

/// `SELECT … FROM canned_replies <rest>` with the columns [`read`] reads.
macro_rules! select_canned {
    ($rest:literal) => {
        concat!(
            "SELECT scope, owner, name, language, body, attachment, updated_by, updated_at FROM canned_replies ",
            $rest
        )
    };
}

fn read(r: &sqlx::any::AnyRow) -> Result<Option<CannedRow>, StoreError> {
    let scope: String = r.try_get("scope")?;
    let Some(scope) = Scope::from_columns(&scope, r.try_get("owner")?) else {
        return Ok(None);
    };
    Ok(Some(CannedRow {
        scope,
        name: r.try_get("name")?,
        language: r.try_get("language")?,
        body: r.try_get("body")?,
        attachment: r.try_get("attachment")?,
        updated_by: r.try_get("updated_by")?,
        updated_at: r.try_get("updated_at")?,
    }))
}

impl Store {
    /// Insert a variant; `false` when one with the same scope, name and language exists.
    pub async fn canned_insert(&self, row: &CannedRow) -> Result<bool, StoreError> {
        let (scope, owner) = row.scope.columns();
        let id = self.new_id().await?;
        let done = sqlx::query(
            "INSERT INTO canned_replies (id, scope, owner, name, language, body, attachment, updated_by, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(scope)
        .bind(owner)
        .bind(&row.name)
        .bind(&row.language)
        .bind(&row.body)
        .bind(&row.attachment)
        .bind(&row.updated_by)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replace the text (and attachment) of an existing variant; `false` when there is none.
    pub async fn canned_update(&self, row: &CannedRow) -> Result<bool, StoreError> {
        let (scope, owner) = row.scope.columns();
        let done = sqlx::query(
            "UPDATE canned_replies SET body = $1, attachment = $2, updated_by = $3, updated_at = $4
             WHERE scope = $5 AND owner = $6 AND name = $7 AND language = $8",
        )
        .bind(&row.body)
        .bind(&row.attachment)
        .bind(&row.updated_by)
        .bind(now_ms())
        .bind(scope)
        .bind(owner)
        .bind(&row.name)
        .bind(&row.language)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Remove one variant (`Some(language)`) or every variant of a reply in a scope; returns how
    /// many rows went.
    pub async fn canned_remove(
        &self,
        scope: &Scope,
        name: &str,
        language: Option<&str>,
    ) -> Result<u64, StoreError> {
        let (s, owner) = scope.columns();
        let done = match language {
            Some(language) => sqlx::query(
                "DELETE FROM canned_replies WHERE scope = $1 AND owner = $2 AND name = $3 AND language = $4",
            )
            .bind(s)
            .bind(owner)
            .bind(name)
            .bind(language)
            .execute(self.pool())
            .await?,
            None => sqlx::query(
                "DELETE FROM canned_replies WHERE scope = $1 AND owner = $2 AND name = $3",
            )
            .bind(s)
            .bind(owner)
            .bind(name)
            .execute(self.pool())
            .await?,
        };
        Ok(done.rows_affected())
    }

    /// Every variant of the replies called `name` in any scope, by scope then language.
    pub async fn canned_named(&self, name: &str) -> Result<Vec<CannedRow>, StoreError> {
        let rows = sqlx::query(select_canned!(
            "WHERE name = $1 ORDER BY scope, owner, language"
        ))
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            out.extend(read(r)?);
        }
        Ok(out)
    }

    /// Every variant of every canned reply, by name (callers keep what the operator may see).
    pub async fn canned_all(&self) -> Result<Vec<CannedRow>, StoreError> {
        let rows = sqlx::query(select_canned!("ORDER BY name, scope, owner, language"))
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            out.extend(read(r)?);
        }
        Ok(out)
    }
}
