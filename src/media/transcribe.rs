//! Speech → text through the OpenAI-compatible transcription API: `POST <url>` with a
//! multipart form (`file`, `model`, `response_format=json`, and `language` / `prompt` when
//! configured), `Authorization: Bearer <key>` when a key is set; the answer is `{"text": …}`.
//! A hosted service and the project's own Whisper server (`scripts/whisper-server.py`) look
//! the same from here: only the URL differs.
//!
//! What comes back is sorted for the job worker: no answer, a timeout, `408`, `429` and `5xx`
//! are the service being unavailable (retried, `Retry-After` honoured); any other `4xx` is the
//! file or the request (the service's own message is kept, e.g. "could not be decoded").

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::EngineError;
use crate::config::TranscriptionConfig;

/// A client for one configured endpoint.
#[derive(Clone)]
pub struct Transcriber {
    http: reqwest::Client,
    url: url::Url,
    config: TranscriptionConfig,
}

impl Transcriber {
    /// `None` when no URL is configured (transcription is off).
    pub fn new(config: &TranscriptionConfig) -> Option<Transcriber> {
        let url = config.url.clone()?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Some(Transcriber {
            http,
            url,
            config: config.clone(),
        })
    }

    /// The endpoint without credentials or query, for messages.
    pub fn endpoint(&self) -> String {
        let mut u = self.url.clone();
        let _ = u.set_password(None);
        let _ = u.set_username("");
        u.set_query(None);
        u.to_string()
    }

    /// The words spoken in `audio` (a file called `name` of type `mime`).
    pub async fn transcribe(
        &self,
        audio: Bytes,
        name: &str,
        mime: &str,
    ) -> Result<String, EngineError> {
        // With its length known, the form is sent with a Content-Length (not chunked), as
        // simple servers expect.
        // The file's bytes are shared with the form, not copied.
        let length = audio.len() as u64;
        let part = || {
            reqwest::multipart::Part::stream_with_length(audio.clone(), length)
                .file_name(name.to_string())
        };
        let part = part().mime_str(mime).unwrap_or_else(|_| part());
        let mut form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", self.config.model.clone())
            .text("response_format", "json");
        if let Some(lang) = self.config.language.as_ref().filter(|l| !l.is_empty()) {
            form = form.text("language", lang.clone());
        }
        if let Some(prompt) = self.config.prompt.as_ref().filter(|p| !p.is_empty()) {
            form = form.text("prompt", prompt.clone());
        }
        let mut request = self.http.post(self.url.clone()).multipart(form);
        if let Some(key) = self.config.api_key.as_ref().filter(|k| !k.is_empty()) {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return body
                .get("text")
                .and_then(Value::as_str)
                .map(|t| t.trim().to_string())
                .ok_or_else(|| EngineError::Unavailable {
                    reason: format!(
                        "the transcription service at {} answered without a `text` field",
                        self.endpoint()
                    ),
                    retry_after: None,
                });
        }
        let message = body
            .pointer("/error/message")
            .or_else(|| body.get("error"))
            .or_else(|| body.get("detail"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| text.chars().take(200).collect());
        let code = status.as_u16();
        if code == 408 || code == 429 || status.is_server_error() {
            return Err(EngineError::Unavailable {
                reason: format!(
                    "the transcription service at {} answered {code}: {message}",
                    self.endpoint()
                ),
                retry_after,
            });
        }
        if code == 401 || code == 403 {
            return Err(EngineError::Unavailable {
                reason: format!(
                    "the transcription service at {} refused the key ({code}: {message}); check media.transcription.api_key",
                    self.endpoint()
                ),
                retry_after: None,
            });
        }
        Err(EngineError::BadInput(format!(
            "the transcription service refused the file ({code}): {message}"
        )))
    }

    fn unreachable(&self, e: &reqwest::Error) -> EngineError {
        // reqwest's own message names only the request; the cause (refused, timed out) is in
        // its sources.
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        let what = if e.is_timeout() {
            format!(
                "did not answer within {} (media.transcription.timeout)",
                humantime::format_duration(self.config.timeout)
            )
        } else {
            format!("is unreachable ({cause})")
        };
        EngineError::Unavailable {
            reason: format!("the transcription service at {} {what}", self.endpoint()),
            retry_after: None,
        }
    }
}
