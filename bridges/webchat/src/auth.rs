//! Who is calling: the visitor token on every API request.
//!
//! The token travels as `Authorization: Bearer <token>`. Two endpoints cannot set headers from a
//! browser — the event stream (`EventSource`) and file downloads (`<img src>`, `<a href>`) — so
//! [`VisitorFromQuery`] also accepts `?token=`; everything else insists on the header, which
//! keeps tokens out of server logs and `Referer` headers wherever possible.
//!
//! A token names a stored visitor (looked up by its SHA-256, as always) or, until the visitor's
//! first state-changing call, a visitor with no record yet whose token is signed and young
//! enough ([`crate::session`]). Handlers that change state call [`Authed::ensure_stored`]
//! first; the others work the same for both.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Visitor;

/// An authenticated visitor (token in the `Authorization` header).
pub struct Authed {
    pub visitor: Visitor,
    /// The token the request carried.
    pub token: String,
    /// Whether the visitor has stored records (else: a signed session that has not written).
    pub stored: bool,
}

impl Authed {
    /// Store the visitor's records if they have none yet (their first state-changing call);
    /// `401` when the store knows their id under another token.
    pub async fn ensure_stored(&mut self, state: &AppState) -> Result<(), ApiError> {
        if self.stored {
            return Ok(());
        }
        let expires = self
            .visitor
            .created_ms
            .saturating_add(state.silent_ttl_ms());
        match state
            .store
            .store_visitor(&self.token, &self.visitor, expires)
            .await?
        {
            Some(visitor) => {
                self.visitor = visitor;
                self.stored = true;
                Ok(())
            }
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// An authenticated visitor whose token may also come as `?token=`.
pub struct VisitorFromQuery(pub Authed);

/// The bearer token of a request, if it carries one.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

async fn authenticate(state: &AppState, token: Option<String>) -> Result<Authed, ApiError> {
    let token = token.ok_or(ApiError::Unauthorized)?;
    let found = crate::session::resolve(
        &state.store,
        &state.sessions,
        &token,
        switchboard_kit::now_ms(),
        state.silent_ttl_ms(),
    )
    .await?;
    match found {
        Some((visitor, stored)) => Ok(Authed {
            visitor,
            token,
            stored,
        }),
        None => Err(ApiError::Unauthorized),
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(state, bearer(&parts.headers)).await
    }
}

impl FromRequestParts<AppState> for VisitorFromQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).or_else(|| {
            Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
                .ok()
                .and_then(|Query(mut query)| query.remove("token"))
        });
        authenticate(state, token).await.map(VisitorFromQuery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&headers).as_deref(), Some("abc"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }
}
