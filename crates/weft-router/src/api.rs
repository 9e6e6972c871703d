//! The HTTP API (127.0.0.1:6784 by default), with Weave's paths and conventions: plain-text
//! errors, 404 for what is not there (scripts use 404 to detect a disabled feature).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::status::Report;

/// What the API handlers read.
#[derive(Debug)]
pub struct ApiState {
    pub report: Report,
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/report", get(report))
        .fallback(not_found)
        .with_state(state)
}

async fn status(State(s): State<Arc<ApiState>>) -> Response {
    text(StatusCode::OK, s.report.status_text())
}

async fn report(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "application/json");
    if !wants_json {
        // Weave answers `?format=<Go template>` here; weft has no template engine yet.
        return text(
            StatusCode::BAD_REQUEST,
            "error: this router serves /report only with 'Accept: application/json'\n".into(),
        );
    }
    match serde_json::to_string_pretty(&s.report) {
        Ok(mut body) => {
            body.push('\n');
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n".into())
}

fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
