//! `X-Payload-HTTP-Method-Override: GET` on a POST is served as the GET on the same path.
//! A form body is the query string; a JSON body is the already-parsed query.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::http::error::ApiError;

/// A query given in the body of an overridden POST (merged over the URL's own parameters).
#[derive(Clone, Debug)]
pub struct OverrideQuery(pub Value);

const MAX_OVERRIDE_BODY: usize = 1024 * 1024;

pub async fn middleware(req: Request, next: Next) -> Response {
    let wants_get = req.method() == Method::POST
        && ["x-payload-http-method-override", "x-http-method-override"]
            .iter()
            .any(|h| req.headers().get(*h).and_then(|v| v.to_str().ok()) == Some("GET"));
    if !wants_get {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bytes = match to_bytes(body, MAX_OVERRIDE_BODY).await {
        Ok(b) => b,
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    let url_query = super::extract::query_tree(parts.uri.query().unwrap_or(""));
    let body_query = if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v @ Value::Object(_)) => v,
            _ => return ApiError::bad_json().into_response(),
        }
    } else {
        super::extract::query_tree(&String::from_utf8_lossy(&bytes))
    };
    let mut merged = match url_query {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    if let Value::Object(b) = body_query {
        // The body wins on conflicts.
        merged.extend(b);
    }
    parts.method = Method::GET;
    parts.extensions.insert(OverrideQuery(Value::Object(merged)));
    next.run(Request::from_parts(parts, Body::empty())).await
}
