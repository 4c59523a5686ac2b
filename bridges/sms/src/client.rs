//! Twilio's REST API, the part the bridge uses, and what its errors mean.
//!
//! * `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form: `To`, `From` or
//!   `MessagingServiceSid`, `Body`, `StatusCallback`, `MediaUrl` repeated) creates a message and
//!   answers `201` with the Message resource (`sid`, `status`, …).
//! * `GET …/Messages.json?To=…&From=…&PageSize=…` lists recent messages, newest first
//!   (`{"messages": […], …}`); `outbound` uses it to find out whether an attempt that crashed
//!   mid-request was accepted after all.
//! * `GET /2010-04-01/Accounts/{AccountSid}.json` (the account: `status`, `friendly_name`) and
//!   `GET …/IncomingPhoneNumbers.json?PhoneNumber=…` (whether a number is the account's), for
//!   `switchboard doctor`.
//! * Media URLs of incoming MMS are fetched with the same Basic auth; Twilio answers with a
//!   redirect to its media store, which reqwest follows (dropping the `Authorization` header on
//!   the way to another host, as it should).
//!
//! Every request authenticates with HTTP Basic (account SID : auth token). Errors come as
//! `{"code": 21211, "message": "…", "more_info": "…", "status": 400}`; [`TwilioError::classify`]
//! turns them into the core's retryable/permanent split: 429 (code 20429) and 5xx are worth
//! retrying (honouring `Retry-After`), everything else Twilio refuses is permanent, quoting
//! Twilio's message.

use std::time::Duration;

use serde::Deserialize;
use switchboard_channel::SendError;

use crate::inbound::explain;

/// The REST client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    api_url: String,
    account_sid: String,
    auth_token: String,
}

/// A message as Twilio returns it (the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub struct MessageResource {
    pub sid: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessagePage {
    #[serde(default)]
    messages: Vec<MessageResource>,
}

/// Twilio's error envelope.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: Option<u32>,
    #[serde(default)]
    pub message: Option<String>,
}

/// What went wrong talking to Twilio.
#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    #[error("cannot reach Twilio: {0}")]
    Network(String),
    #[error("Twilio answered {status}: {}", body.message.as_deref().unwrap_or("(no message)"))]
    Api {
        status: u16,
        body: ErrorBody,
        retry_after: Option<Duration>,
    },
    #[error("Twilio's answer is not understood: {0}")]
    Decode(String),
}

/// The sender of a new message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    From(String),
    Service(String),
}

/// A new message.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub to: &'a str,
    pub sender: &'a Sender,
    pub body: &'a str,
    pub status_callback: &'a str,
    pub media_urls: &'a [String],
}

use switchboard_kit::http::retry_after;

/// The form body of a new message.
fn encode_message(m: &NewMessage<'_>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("To", m.to);
    match m.sender {
        Sender::From(from) => form.append_pair("From", from),
        Sender::Service(sid) => form.append_pair("MessagingServiceSid", sid),
    };
    if !m.body.is_empty() {
        form.append_pair("Body", m.body);
    }
    for url in m.media_urls {
        form.append_pair("MediaUrl", url);
    }
    form.append_pair("StatusCallback", m.status_callback);
    form.finish()
}

impl Client {
    pub fn new(api_url: &str, account_sid: &str, auth_token: &str) -> Result<Client, String> {
        let http = switchboard_kit::http::client(Duration::from_secs(60))?;
        Ok(Client {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
        })
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_url, self.account_sid
        )
    }

    async fn check(response: reqwest::Response) -> Result<reqwest::Response, TwilioError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = response.json::<ErrorBody>().await.unwrap_or_default();
        Err(TwilioError::Api {
            status: status.as_u16(),
            body,
            retry_after,
        })
    }

    /// Create (send) a message.
    pub async fn create_message(&self, m: &NewMessage<'_>) -> Result<MessageResource, TwilioError> {
        let form = encode_message(m);
        let response = self
            .http
            .post(self.messages_url())
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|e| TwilioError::Network(e.to_string()))?;
        let response = Self::check(response).await?;
        response
            .json::<MessageResource>()
            .await
            .map_err(|e| TwilioError::Decode(e.to_string()))
    }

    /// `GET /2010-04-01/Accounts/{AccountSid}{rest}` with the account's credentials, as JSON
    /// (`rest`: `.json`, `/IncomingPhoneNumbers.json?…`). Read-only; `switchboard doctor`.
    pub async fn get_account_json(&self, rest: &str) -> Result<serde_json::Value, TwilioError> {
        let response = self
            .http
            .get(format!(
                "{}/2010-04-01/Accounts/{}{rest}",
                self.api_url, self.account_sid
            ))
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .send()
            .await
            .map_err(|e| TwilioError::Network(e.without_url().to_string()))?;
        Self::check(response)
            .await?
            .json()
            .await
            .map_err(|e| TwilioError::Decode(e.without_url().to_string()))
    }

    /// The most recent messages to `to` (and from `from`, when given), newest first.
    pub async fn recent_messages(
        &self,
        to: &str,
        from: Option<&str>,
    ) -> Result<Vec<MessageResource>, TwilioError> {
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("To", to);
            if let Some(from) = from {
                query.append_pair("From", from);
            }
            query.append_pair("PageSize", "20");
            query.finish()
        };
        let response = self
            .http
            .get(format!("{}?{query}", self.messages_url()))
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .send()
            .await
            .map_err(|e| TwilioError::Network(e.to_string()))?;
        let page: MessagePage = Self::check(response)
            .await?
            .json()
            .await
            .map_err(|e| TwilioError::Decode(e.to_string()))?;
        Ok(page.messages)
    }

    /// Download an MMS medium: the bytes (refusing more than `limit`) and the content type.
    /// `Ok(None)` when it is larger than `limit`.
    pub async fn fetch_media(
        &self,
        url: &str,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, TwilioError> {
        let response = self
            .http
            .get(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .send()
            .await
            .map_err(|e| TwilioError::Network(e.to_string()))?;
        let mut response = Self::check(response).await?;
        if response.content_length().is_some_and(|n| n > limit) {
            return Ok(None);
        }
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TwilioError::Network(e.to_string()))?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Ok(None);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some((bytes, mime)))
    }
}

impl TwilioError {
    /// Worth trying again later?
    pub fn is_retryable(&self) -> bool {
        match self {
            TwilioError::Network(_) => true,
            TwilioError::Api { status, body, .. } => {
                *status == 429 || *status >= 500 || body.code == Some(20429)
            }
            TwilioError::Decode(_) => false,
        }
    }

    /// The core's view of a failed send, with a reason written for operators.
    pub fn classify(self) -> SendError {
        let retryable = self.is_retryable();
        match self {
            TwilioError::Network(e) => SendError::Retryable {
                reason: format!("cannot reach Twilio: {e}"),
                retry_after: None,
            },
            TwilioError::Api {
                status,
                body,
                retry_after,
            } if retryable => {
                let what = if status == 429 || body.code == Some(20429) {
                    "Twilio is rate limiting"
                } else {
                    "Twilio is unavailable"
                };
                let message = body.message.as_deref().unwrap_or("no message");
                SendError::Retryable {
                    reason: format!("{what} (HTTP {status}: {message})"),
                    retry_after,
                }
            }
            TwilioError::Api { status, body, .. } => {
                let quoted = body
                    .message
                    .as_deref()
                    .map(|m| format!("\"{m}\""))
                    .unwrap_or_else(|| format!("HTTP {status}"));
                let reason = match body.code {
                    Some(code) => match explain(code) {
                        Some(words) => format!("{words} (Twilio error {code}: {quoted})"),
                        None => format!("Twilio refused the message (error {code}: {quoted})"),
                    },
                    None => format!("Twilio refused the message ({quoted})"),
                };
                SendError::Permanent { reason }
            }
            TwilioError::Decode(e) => SendError::Permanent {
                reason: format!("Twilio's answer is not understood: {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::fixture;

    fn api(status: u16, json: &str) -> TwilioError {
        let body: ErrorBody = serde_json::from_str(json).unwrap();
        TwilioError::Api {
            status,
            body,
            retry_after: None,
        }
    }

    #[test]
    fn the_error_fixtures_are_permanent_with_twilios_words() {
        let Some(invalid_to) = fixture("error_21211_invalid_to.json") else {
            return;
        };
        match api(400, &invalid_to).classify() {
            SendError::Permanent { reason } => {
                assert!(reason.contains("not a valid phone number"), "{reason}");
                assert!(
                    reason.contains("The 'To' number 5551234 is not a valid phone number."),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        let Some(auth) = fixture("error_20003_authenticate.json") else {
            return;
        };
        assert!(
            matches!(api(401, &auth).classify(), SendError::Permanent { reason } if reason.contains("20003") && reason.contains("Authenticate"))
        );
    }

    #[test]
    fn rate_limits_and_outages_are_retryable() {
        let limited = TwilioError::Api {
            status: 429,
            body: ErrorBody {
                code: Some(20429),
                message: Some("Too Many Requests".into()),
            },
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            limited.classify(),
            SendError::Retryable {
                reason: "Twilio is rate limiting (HTTP 429: Too Many Requests)".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(matches!(
            api(503, "{}").classify(),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            TwilioError::Network("reset".into()).classify(),
            SendError::Retryable { .. }
        ));
        let unsubscribed = api(
            400,
            r#"{"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}"#,
        );
        assert!(
            matches!(unsubscribed.classify(), SendError::Permanent { reason } if reason.contains("STOP") && reason.contains("unsubscribed recipient"))
        );
        let landline = api(
            400,
            r#"{"code": 21614, "message": "'To' number is not a valid mobile number"}"#,
        );
        assert!(
            matches!(landline.classify(), SendError::Permanent { reason } if reason.contains("not a mobile number"))
        );
        let geo = api(
            400,
            r#"{"code": 21408, "message": "Permission to send an SMS has not been enabled for the region"}"#,
        );
        assert!(
            matches!(geo.classify(), SendError::Permanent { reason } if reason.contains("country"))
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn the_message_fixture_decodes() {
        let Some(m) = fixture("create_message_response_queued.json") else {
            return;
        };
        let m: MessageResource = serde_json::from_str(&m).unwrap();
        assert_eq!(m.sid, "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(m.status.as_deref(), Some("queued"));
    }
}
