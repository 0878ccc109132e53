//! The status page: one self-contained HTML dashboard, compiled into the binary.
//!
//! The page shows health, live traffic (read from `GET /status/stream`), the active changes and a
//! console that calls a tool and shows its SSE or NDJSON frames as they arrive. It loads nothing
//! from anywhere but its own origin, so it works offline and under [`CSP`], which forbids inline
//! script and style. The token the user pastes stays in the tab's `sessionStorage`.
//!
//! The server routes `GET /` and `GET /static/*` here through [`asset`] and must send [`CSP`] as
//! the `Content-Security-Policy` header with every asset (and `X-Content-Type-Options: nosniff`).

/// One embedded file of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// The `Content-Type` header value to send with it.
    pub content_type: &'static str,
    /// The file's bytes, exactly as in `src/page/`.
    pub body: &'static [u8],
}

/// The `Content-Security-Policy` the server must send with the page and its assets.
///
/// Everything is denied except same-origin scripts, styles and `fetch` (the page reads the SSE
/// stream with `fetch`, since `EventSource` cannot send an `Authorization` header), and images
/// from the page itself or `data:` URLs (the favicon is `data:`, so the browser asks for no
/// `/favicon.ico`). There is no `'unsafe-inline'` and no `'unsafe-eval'`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// The asset served at `path` (the request target without its query), or `None` for a 404.
///
/// `/` and `/index.html` give the page; `/static/app.js` and `/static/app.css` its script and
/// style. Nothing else matches, so no path can reach the file system.
pub fn asset(path: &str) -> Option<Asset> {
    match path {
        "/" | "/index.html" => Some(Asset {
            content_type: HTML,
            body: INDEX_HTML,
        }),
        "/static/app.js" => Some(Asset {
            content_type: JS,
            body: APP_JS,
        }),
        "/static/app.css" => Some(Asset {
            content_type: CSS,
            body: APP_CSS,
        }),
        _ => None,
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const INDEX_HTML: &[u8] = include_bytes!("index.html");
const APP_JS: &[u8] = include_bytes!("app.js");
const APP_CSS: &[u8] = include_bytes!("app.css");

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `html` has an attribute like ` onclick=`.
    fn has_inline_handler(html: &str) -> bool {
        html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    fn text(path: &str) -> &'static str {
        let a = asset(path).unwrap_or_else(|| panic!("{path} is served"));
        std::str::from_utf8(a.body).expect("assets are UTF-8")
    }

    #[test]
    fn root_index_and_static_files_are_served_with_their_types() {
        assert_eq!(asset("/").map(|a| a.content_type), Some(HTML));
        assert_eq!(asset("/index.html"), asset("/"));
        assert_eq!(asset("/static/app.js").map(|a| a.content_type), Some(JS));
        assert_eq!(asset("/static/app.css").map(|a| a.content_type), Some(CSS));
        for path in ["/", "/static/app.js", "/static/app.css"] {
            assert!(!text(path).is_empty(), "{path} has a body");
        }
    }

    #[test]
    fn unknown_and_traversal_paths_are_not_found() {
        for path in [
            "",
            "/static/",
            "/static/../Cargo.toml",
            "/static/app.js/",
            "/static/APP.JS",
            "/static/app.js?x=1",
            "//static/app.js",
            "/favicon.ico",
            "/static/mod.rs",
        ] {
            assert_eq!(asset(path), None, "{path:?}");
        }
    }

    #[test]
    fn the_policy_allows_no_inline_or_eval_and_denies_by_default() {
        assert!(CSP.starts_with("default-src 'none';"));
        assert!(!CSP.contains("unsafe"));
        assert!(!CSP.contains('*'));
        assert!(!CSP.contains("http"));
        for directive in [
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(CSP.contains(directive), "{directive}");
        }
        // A header value must stay on one line.
        assert!(!CSP.contains(['\n', '\r']));
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        let html = text("/");
        assert!(html.contains(r#"<script type="module" src="/static/app.js"></script>"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/static/app.css">"#));
        // Inline script or style would be blocked by the policy.
        assert_eq!(html.matches("<script").count(), 1, "one external script");
        assert!(!html.contains("<style"));
        assert!(!html.contains(" style="));
        assert!(!has_inline_handler(html), "no inline event handlers");
        for path in ["/", "/static/app.js", "/static/app.css"] {
            let body = text(path);
            for remote in ["http://", "https://", "//fonts.", "@import", "url(http"] {
                assert!(!body.contains(remote), "{path} mentions {remote}");
            }
        }
    }

    #[test]
    fn inline_handlers_are_recognised() {
        assert!(has_inline_handler(r#"<button onclick="x()">"#));
        assert!(!has_inline_handler("<p>based on one tool</p>"));
    }

    #[test]
    fn the_script_keeps_the_token_out_of_persistent_storage() {
        let js = text("/static/app.js");
        assert!(js.contains("sessionStorage"));
        assert!(!js.contains("localStorage"));
        assert!(!js.contains("document.cookie"));
        assert!(
            !js.contains("EventSource("),
            "EventSource cannot send Authorization"
        );
        assert!(!js.contains("eval("));
        assert!(
            !js.contains("innerHTML"),
            "text goes in through textContent"
        );
    }
}
