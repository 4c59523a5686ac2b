//! Who is calling: the visitor token on every API request.
//!
//! The token travels as `Authorization: Bearer <token>`. Two endpoints cannot set headers from a
//! browser — the event stream (`EventSource`) and file downloads (`<img src>`, `<a href>`) — so
//! [`VisitorFromQuery`] also accepts `?token=`; everything else insists on the header, which
//! keeps tokens out of server logs and `Referer` headers wherever possible.

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
    match state.store.visitor_by_token(&token).await? {
        Some(visitor) => Ok(Authed { visitor }),
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
