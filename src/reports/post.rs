//! Posting a report into a room: the table (HTML with a plain-text fallback), then the CSV
//! file and the chart. `!sb report` answers with it; the weekly digest posts it to a lobby.
//! Every event is sent under a transaction id derived from `txn`, so posting the same report
//! again (a retried command, a digest resent after a crash) does not show it twice.

use bytes::Bytes;
use serde_json::{json, Value};
use switchboard_channel::{Attachment, Content, MediaRef};

use super::{chart, Period, Report};
use crate::bridge::Bridge;
use crate::matrix::{content, MatrixError};

/// The table as a notice (a reply to `reply_to` when given).
pub fn table(report: &Report, reply_to: Option<&str>) -> Value {
    let notice = json!({
        "msgtype": "m.notice",
        "body": report.text(),
        "format": "org.matrix.custom.html",
        "formatted_body": report.html(),
    });
    match reply_to {
        Some(event) => content::with_reply(notice, event),
        None => notice,
    }
}

/// Post the CSV and the chart of `report` to `room_id` (the table is the caller's, see
/// [`table`]); the events' transaction ids are `<txn>-<i>`.
pub async fn files(
    bridge: &Bridge,
    room_id: &str,
    txn: &str,
    report: &Report,
    period: &Period,
) -> Result<(), MatrixError> {
    let stem = period.file_stem();
    let mut files = vec![(format!("{stem}.csv"), "text/csv", report.csv().into_bytes())];
    match chart::png(report) {
        Ok(png) => files.push((format!("{stem}.png"), "image/png", png)),
        Err(e) => tracing::warn!(error = %e, "report chart not drawn"),
    }
    for (i, (name, mime, data)) in files.into_iter().enumerate() {
        let size = data.len() as u64;
        let mxc = bridge
            .homeserver
            .upload(Bytes::from(data), mime, &name)
            .await?;
        let events = content::to_matrix(&Content {
            text: String::new(),
            html: None,
            attachments: vec![Attachment {
                media: MediaRef(mxc),
                name,
                mime: mime.into(),
                size,
            }],
        });
        if let Some(event) = events.first() {
            bridge
                .homeserver
                .send(
                    room_id,
                    "m.room.message",
                    &format!("{txn}-{i}"),
                    event,
                    None,
                    None,
                )
                .await?;
        }
    }
    Ok(())
}
