//! Payload's CORS headers on every `/api` response, and `OPTIONS` answered with `{}`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const ALLOW_METHODS: &str = "PUT, PATCH, POST, GET, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Origin, X-Requested-With, Content-Type, Accept, Authorization, Content-Encoding, x-apollo-tracing, X-Payload-HTTP-Method-Override";

/// Allowed origins: `*` or an explicit list (empty = no cross-origin access).
#[derive(Clone, Debug, Default)]
pub struct CorsPolicy {
    pub any: bool,
    pub origins: Vec<String>,
}

impl CorsPolicy {
    pub fn from_list(list: &[String]) -> Self {
        CorsPolicy {
            any: list.iter().any(|o| o == "*"),
            origins: list.iter().filter(|o| *o != "*").cloned().collect(),
        }
    }
}

pub async fn middleware(State(policy): State<Arc<CorsPolicy>>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut res = if req.method() == Method::OPTIONS {
        (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response()
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("X-Request-Id"),
    );
    if policy.any {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    } else if let Some(origin) = origin {
        let allowed = origin
            .to_str()
            .map(|o| policy.origins.iter().any(|a| a == o))
            .unwrap_or(false);
        if allowed {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    res
}
