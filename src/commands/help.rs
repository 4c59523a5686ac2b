//! `help`: the commands, with what each needs.

use super::{Context, COMMANDS};
use crate::matrix::MatrixError;

pub fn short(bare: bool) -> String {
    let prefix = if bare { "" } else { "!sb " };
    let names: Vec<String> = COMMANDS
        .iter()
        .map(|(_, n, _, _)| format!("`{prefix}{n}`"))
        .collect();
    format!("Commands: {}.", names.join(", "))
}

pub async fn run(ctx: &Context<'_>, bare: bool) -> Result<(), MatrixError> {
    let prefix = if bare { "" } else { "!sb " };
    let lines: Vec<String> = COMMANDS
        .iter()
        .map(|(_, n, level, d)| {
            format!(
                "{prefix}{n} — {d} ({})",
                format!("{level:?}").to_lowercase()
            )
        })
        .collect();
    ctx.reply(&format!("Switchboard commands: {}", lines.join(" · ")))
        .await
}
