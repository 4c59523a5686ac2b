//! Files: visitor uploads (`POST /api/v1/files`) and downloads of the conversation's files
//! (`GET /api/v1/files/{file_id}`).
//!
//! Uploads are read chunk by chunk and refused with 413 as soon as they pass
//! `max_upload_bytes`; axum's own body limit on this route is set a little higher so that the
//! refusal is ours, with a message naming the limit. The file goes to the core's media store
//! (`Host::put_media`) and then travels as an ordinary visitor message (see [`crate::inbound`]).
//!
//! Bytes are never served by media reference: a file is downloadable only through a
//! `file:<visitor>:<file_id>` record, written for the files of that visitor's own conversation
//! (theirs and the agents'), so one visitor's token cannot fetch another's files. Downloads are
//! served with `nosniff`, a sandboxing CSP, and `attachment` disposition for anything but plain
//! raster images, so an uploaded HTML or SVG file cannot run script on the bridge's origin.

use crate::limits::ClientAddr;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{FromRequest, Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use bytes::{Bytes, BytesMut};
use switchboard_channel::{Attachment, HostError};

use crate::auth::{Authed, VisitorFromQuery};
use crate::error::ApiError;
use crate::inbound::{self, Accepted, NewMessage};
use crate::parse::check_client_id;
use crate::sanitize;
use crate::state::AppState;
use crate::store::{random_hex, FileRecord};
use crate::transcript::FileEntry;

/// Extra room above `max_upload_bytes` for axum's body limit: the multipart framing and the
/// small text fields, so that an oversized file is refused by our check, not axum's.
pub const BODY_LIMIT_SLACK: u64 = 1024 * 1024;

/// A human-readable size: `10 MiB`, `512 KiB`, `300 bytes`.
pub fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= 1024 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge {
        code: "file_too_large",
        message: format!(
            "The file is too large: the limit is {} ({limit} bytes).",
            human_size(limit)
        ),
    }
}

fn multipart_error(error: MultipartError, limit: u64) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        ApiError::bad_request("invalid_multipart", error.body_text())
    }
}

/// Read the file part, refusing it as soon as it passes `limit`.
async fn read_limited(mut field: Field<'_>, limit: u64) -> Result<Bytes, ApiError> {
    let mut data = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        if (data.len() + chunk.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data.freeze())
}

/// Longest text field of the upload form we read (caption, client id, reply target).
const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;

async fn read_text(field: Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or("").to_owned();
    let bytes = read_limited(field, MAX_TEXT_FIELD_BYTES as u64)
        .await
        .map_err(|e| match e {
            ApiError::TooLarge { .. } => ApiError::TooLarge {
                code: "text_too_long",
                message: format!("The {name} field is too long."),
            },
            other => other,
        })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::bad_request(
            "invalid_multipart",
            format!("The {name} field is not UTF-8 text."),
        )
    })
}

/// An upload form, read and checked: one non-empty file (name sanitised with
/// [`sanitize::file_name`], mime type decided by [`sanitize::mime_type`]), a valid client id
/// when one was sent, the caption cleaned and within the text limit. `reply_to` is checked
/// against the store by the handler.
#[derive(Debug)]
pub struct UploadForm {
    pub data: Bytes,
    pub name: String,
    pub mime: String,
    pub client_id: Option<String>,
    pub caption: String,
    pub reply_to: Option<String>,
}

/// Read the parts of an upload (`file`, `client_id`, `caption`, `reply_to`; others skipped),
/// refusing a file over `limit` as soon as it passes it.
async fn read_form(mut multipart: Multipart, limit: u64) -> Result<UploadForm, ApiError> {
    let mut upload: Option<(Bytes, String, String)> = None;
    let (mut client_id, mut caption, mut reply_to) = (None, String::new(), None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        match field.name().unwrap_or("") {
            "file" => {
                if upload.is_some() {
                    return Err(ApiError::bad_request(
                        "too_many_files",
                        "Send one file per request.",
                    ));
                }
                let name = sanitize::file_name(field.file_name().unwrap_or(""));
                let mime = sanitize::mime_type(field.content_type(), &name);
                let data = read_limited(field, limit).await?;
                upload = Some((data, name, mime));
            }
            "client_id" => client_id = Some(read_text(field).await?.trim().to_owned()),
            "caption" => caption = inbound::check_text(&read_text(field).await?)?,
            "reply_to" => {
                reply_to = Some(read_text(field).await?.trim().to_owned()).filter(|r| !r.is_empty())
            }
            _ => {} // unknown parts are skipped
        }
    }
    let Some((data, name, mime)) = upload else {
        return Err(ApiError::bad_request(
            "missing_file",
            "The request has no part named \"file\".",
        ));
    };
    if data.is_empty() {
        return Err(ApiError::bad_request("empty_file", "The file is empty."));
    }
    if let Some(id) = &client_id {
        check_client_id(id)?;
    }
    Ok(UploadForm {
        data,
        name,
        mime,
        client_id,
        caption,
        reply_to,
    })
}

/// Parse an upload body as the server does, without a server: `content_type` is the request's
/// `Content-Type` header (with the multipart boundary), `limit` the largest file accepted.
pub async fn parse_upload(
    content_type: &str,
    body: Bytes,
    limit: u64,
) -> Result<UploadForm, ApiError> {
    let request = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .map_err(|e| ApiError::bad_request("invalid_multipart", e.to_string()))?;
    let multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
    read_form(multipart, limit).await
}

/// `POST /api/v1/files` (multipart: `file`, optional `client_id`, `caption`, `reply_to`).
pub async fn upload(
    State(state): State<AppState>,
    addr: ClientAddr,
    mut authed: Authed,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Accepted>, ApiError> {
    // Counted before the body is read: a refused upload costs us no bytes.
    state.limits.upload(addr)?;
    let limit = state.config.max_upload_bytes;
    let multipart =
        multipart.map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
    let UploadForm {
        data,
        name,
        mime,
        client_id,
        caption,
        reply_to,
    } = read_form(multipart, limit).await?;
    let client_id = match client_id {
        Some(id) => {
            // A visitor with no records has no messages to repeat.
            if authed.stored {
                if let Some(accepted) =
                    inbound::already_accepted(&state, &authed.visitor, &id).await?
                {
                    return Ok(Json(accepted));
                }
            }
            id
        }
        None => random_hex::<12>(),
    };
    state.limiter.check(&authed.visitor.id)?;
    if !authed.visitor.wrote {
        state.limits.new_conversation(addr)?;
    }
    inbound::check_reply_target(&state, &authed.visitor, reply_to.as_deref()).await?;
    // With every limit passed: the session's first write stores the visitor.
    authed.ensure_stored(&state).await?;
    let visitor = authed.visitor;

    let size = data.len() as u64;
    let media = state.host().put_media(data, &mime, &name).await?;
    let file_id = random_hex::<16>();
    let record = FileRecord {
        media: media.clone(),
        name: name.clone(),
        mime: mime.clone(),
        size,
    };
    state.store.put_file(&visitor.id, &file_id, &record).await?;
    let entry = FileEntry {
        file_id,
        name: name.clone(),
        mime: mime.clone(),
        size,
    };
    let attachment = Attachment {
        media,
        name,
        mime,
        size,
    };
    let message = NewMessage {
        client_id,
        text: caption,
        files: vec![(entry, attachment)],
        reply_to,
    };
    inbound::accept_message(&state, &visitor, message)
        .await
        .map(Json)
}

/// Is this shaped like one of our file ids (hex)?
fn is_file_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /api/v1/files/{file_id}` (token in the header or `?token=`): a file of the visitor's
/// conversation.
pub async fn download(
    State(state): State<AppState>,
    VisitorFromQuery(auth): VisitorFromQuery,
    Path(file_id): Path<String>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::NotFound("There is no such file in this chat.".into());
    if !is_file_id(&file_id) {
        return Err(missing());
    }
    let record = state
        .store
        .file(&auth.visitor.id, &file_id)
        .await?
        .ok_or_else(missing)?;
    let (bytes, stored_mime) = match state.host().get_media(&record.media).await {
        Ok(found) => found,
        Err(HostError::NotFound) => {
            return Err(ApiError::NotFound(
                "The file is no longer available.".into(),
            ))
        }
        Err(other) => return Err(other.into()),
    };
    let mime = if record.mime.is_empty() {
        stored_mime
    } else {
        record.mime.clone()
    };
    let inline = sanitize::is_inline_image(&mime);
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(&mime)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Ok(value) = HeaderValue::from_str(&sanitize::content_disposition(&record.name, inline)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    // A customer's file is never run as a page: no sniffing, no scripts, no referrer.
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ),
        (header::CACHE_CONTROL, "private, max-age=3600"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "cross-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(10 * 1024 * 1024), "10 MiB");
        assert_eq!(human_size(1536 * 1024), "1.5 MiB");
        assert_eq!(human_size(2048), "2 KiB");
        assert_eq!(human_size(12), "12 bytes");
        let message = too_large(10 * 1024 * 1024).to_string();
        assert!(message.contains("10 MiB"), "{message}");
    }

    #[test]
    fn file_ids() {
        assert!(is_file_id("0a1b"));
        assert!(!is_file_id("../x"));
        assert!(!is_file_id(""));
    }
}
