//! The embeddable widget and the demo page, served as static assets.
//!
//! The sources live in `bridges/webchat/assets/` and are compiled in with `include_str!`, so the
//! bridge is one binary with nothing to deploy beside it. `widget.js` carries its stylesheet
//! inline (the `"__SWITCHBOARD_CSS__"` placeholder is replaced by `widget.css` as a JSON string
//! once, at first use) because it styles a Shadow DOM of its own: one `<script>` tag is the whole
//! integration. Everything site-specific (name, greeting, limits) the widget fetches from
//! `GET /api/v1/config`, so the script is the same for every site and can be cached.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;

const WIDGET_JS: &str = include_str!("../assets/widget.js");
const WIDGET_CSS: &str = include_str!("../assets/widget.css");
const DEMO_HTML: &str = include_str!("../assets/demo.html");

/// The placeholder in `widget.js` that becomes the stylesheet.
const CSS_PLACEHOLDER: &str = "\"__SWITCHBOARD_CSS__\"";

static SCRIPT: LazyLock<String> = LazyLock::new(|| {
    // A JSON string is a valid JavaScript string literal.
    let css = serde_json::Value::String(WIDGET_CSS.to_owned()).to_string();
    WIDGET_JS.replacen(CSS_PLACEHOLDER, &css, 1)
});

/// `GET /widget.js`.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SCRIPT.as_str(),
    )
}

/// `GET /demo`: a pretend company site with the one-tag embed.
pub async fn demo() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        DEMO_HTML,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stylesheet_is_inlined() {
        assert!(WIDGET_JS.contains(CSS_PLACEHOLDER));
        assert!(!SCRIPT.contains(CSS_PLACEHOLDER));
        assert!(DEMO_HTML.contains(r#"<script src="/webchat/widget.js" async></script>"#));
    }
}
