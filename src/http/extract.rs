//! Extractors: the parsed query tree, the JSON body in Payload's error shape, and the call
//! context (principal + tenant + request metadata) every collection route needs.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde_json::Value;

use crate::app::AppState;
use crate::auth::principal::Principal;
use crate::collections::access::TenantContext;
use crate::collections::engine::qs;
use crate::http::error::ApiError;
use crate::http::method_override::OverrideQuery;
use crate::http::request_id::RequestId;

/// Parses a raw query string the way Payload's `qs` does.
pub fn query_tree(raw: &str) -> Value {
    qs::parse(raw)
}

/// The request's query as a `qs` tree (or the body of a method-override POST).
pub struct QueryTree(pub Value);

impl<S: Send + Sync> FromRequestParts<S> for QueryTree {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if let Some(OverrideQuery(v)) = parts.extensions.get::<OverrideQuery>() {
            return Ok(QueryTree(v.clone()));
        }
        let raw = parts.uri.query().unwrap_or("");
        if has_encoded_nul(raw) {
            return Err(ApiError::bad_request(
                "The query string contains a NUL character (%00), which no value can hold.",
            ));
        }
        Ok(QueryTree(query_tree(raw)))
    }
}

/// Whether a raw query string carries a NUL: only as `%00`, since a URI cannot hold the byte.
fn has_encoded_nul(raw: &str) -> bool {
    raw.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// Who calls, in which tenant, from where.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub principal: Principal,
    pub tenant: TenantContext,
    pub request_id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl FromRequestParts<AppState> for CallContext {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(ctx) = parts.extensions.get::<CallContext>() {
            return Ok(ctx.clone());
        }
        let principal = crate::auth::principal_from_headers(state, &parts.headers).await?;
        let tenant = crate::tenancy::resolve::resolve(
            state,
            &parts.headers,
            parts.uri.query().unwrap_or(""),
            &principal,
        )
        .await?;
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let span = tracing::Span::current();
        if let Some(t) = tenant.tenant_id {
            span.record("tenant", tracing::field::display(t));
        }
        if let Some(u) = principal.user_id() {
            span.record("principal", tracing::field::display(u));
        }
        let ctx = CallContext {
            principal,
            tenant,
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
            ip,
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(1000).collect()),
        };
        parts.extensions.insert(ctx.clone());
        Ok(ctx)
    }
}

/// A cookie's value.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Parses a JSON object body: invalid JSON → Payload's vague 400; empty → `{}`. A NUL
/// character (`\u0000`) in any key or string is refused with its path: PostgreSQL's text and
/// jsonb cannot hold it, and storing the value without it would change what was sent.
pub fn json_object(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => {
            // Valid JSON can carry a NUL only as the escape `\u0000`: without those bytes the
            // parsed tree holds none and is not walked.
            if bytes.windows(5).any(|w| w == b"u0000") {
                if let Some(path) = m.iter().find_map(|(k, v)| nul_path(k, v)) {
                    return Err(ApiError::bad_request(format!(
                        "The value at \"{path}\" contains a NUL character (\\u0000), which cannot be stored."
                    )));
                }
            }
            Ok(m)
        }
        _ => Err(ApiError::bad_json()),
    }
}

/// The dotted path (Payload's notation, array indexes included) of the first key or string
/// under `key` that holds a NUL character.
fn nul_path(key: &str, value: &Value) -> Option<String> {
    if key.contains('\0') {
        return Some(key.replace('\0', "\\u0000"));
    }
    let inner = match value {
        Value::String(s) => return s.contains('\0').then(|| key.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(&i.to_string(), v)),
        Value::Object(m) => m.iter().find_map(|(k, v)| nul_path(k, v)),
        _ => None,
    }?;
    Some(format!("{key}.{inner}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_found_with_their_path() {
        let body = br#"{"title": "ok", "layout": [{"blockType": "text", "body": "a\u0000b"}]}"#;
        let err = json_object(body).unwrap_err().to_string();
        assert!(err.contains("\"layout.0.body\""), "{err}");
        let err = json_object(br#"{"meta": {"k\u0000": 1}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"meta.k\\u0000\""), "{err}");
        // An escaped backslash followed by "u0000" is text, not a NUL.
        assert!(json_object(br#"{"title": "a\\u0000b"}"#).is_ok());
    }

    #[test]
    fn an_encoded_nul_is_found_in_a_query_string() {
        assert!(has_encoded_nul("tenant=a%00b"));
        assert!(has_encoded_nul("where[title][equals]=%00"));
        assert!(!has_encoded_nul("limit=100&page=2"));
        assert!(!has_encoded_nul("q=%2500"));
    }
}
