//! The one error type of the HTTP surface, rendered in Payload's error shape.
//!
//! Handlers return `Result<T, ApiError>`. Client mistakes become 4xx with Payload's exact
//! messages; internal failures are logged with the request id and answered with the generic
//! 500 message, never with their cause.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One failing field of a `ValidationError`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub path: String,
    pub label: Option<String>,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, label: Option<&str>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            label: label.map(str::to_string),
            message: message.into(),
        }
    }
}

/// A `ValidationError`: the collection, the document id on updates, every failing field.
#[derive(Debug, Clone)]
pub struct Validation {
    pub collection: String,
    pub id: Option<String>,
    pub errors: Vec<FieldError>,
}

impl Validation {
    /// Payload's summary: "The following field is invalid: Title" / "fields are invalid: A, B".
    pub fn message(&self) -> String {
        let names: Vec<&str> = self
            .errors
            .iter()
            .map(|e| e.label.as_deref().unwrap_or(&e.path))
            .collect();
        if names.len() == 1 {
            format!("The following field is invalid: {}", names[0])
        } else {
            format!("The following fields are invalid: {}", names.join(", "))
        }
    }

    fn data(&self) -> Value {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| {
                let mut o = serde_json::Map::new();
                if let Some(label) = &e.label {
                    o.insert("label".into(), json!(label));
                }
                o.insert("message".into(), json!(e.message));
                o.insert("path".into(), json!(e.path));
                Value::Object(o)
            })
            .collect();
        let mut data = serde_json::Map::new();
        data.insert("collection".into(), json!(self.collection));
        if let Some(id) = &self.id {
            data.insert("id".into(), json!(id));
        }
        data.insert("errors".into(), Value::Array(errors));
        Value::Object(data)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("You are not allowed to perform this action.")]
    Forbidden,
    #[error("Not Found")]
    NotFound,
    #[error("{}", .0.message())]
    Validation(Validation),
    /// Paths of a `where`/`sort` that cannot be queried, with an optional explanation.
    #[error("The following path cannot be queried: {}", .0.join(", "))]
    Query(Vec<String>),
    /// A query problem Payload would answer with 500; ours names the path and the problem.
    #[error("{message}")]
    QueryValue { path: String, message: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    /// A bearer token that was presented and refused (answered with `WWW-Authenticate`).
    #[error("{0}")]
    InvalidToken(String),
    #[error("Request Entity Too Large")]
    PayloadTooLarge,
    #[error("Unsupported Media Type: send application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unavailable(String),
    /// No route for this path: Payload's 404 without an `errors` array.
    #[error("Route not found \"{0}\"")]
    RouteNotFound(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// Payload's answer to a body that is not valid JSON.
    pub fn bad_json() -> Self {
        ApiError::BadRequest("An unknown error occurred.".into())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    pub fn validation(collection: &str, id: Option<String>, errors: Vec<FieldError>) -> Self {
        ApiError::Validation(Validation {
            collection: collection.to_string(),
            id,
            errors,
        })
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Validation(_)
            | ApiError::Query(_)
            | ApiError::QueryValue { .. }
            | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body item Payload puts in `errors[]`.
    pub fn body_item(&self) -> Value {
        match self {
            ApiError::Validation(v) => {
                json!({"name": "ValidationError", "data": v.data(), "message": self.to_string()})
            }
            ApiError::Query(paths) => {
                let data: Vec<Value> = paths.iter().map(|p| json!({"path": p})).collect();
                json!({"name": "QueryError", "data": data, "message": self.to_string()})
            }
            ApiError::QueryValue { path, message } => {
                json!({"name": "QueryError", "data": [{"path": path}], "message": message})
            }
            ApiError::Internal(_) => json!({"message": "Something went wrong."}),
            other => json!({"message": other.to_string()}),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from_db_value_error(&e).unwrap_or_else(|| ApiError::Internal(anyhow::Error::new(e)))
    }
}

impl ApiError {
    /// A statement PostgreSQL refused for a value the request carried: a data exception
    /// (SQLSTATE class 22: a NUL character, an out-of-range number or date, text that is not
    /// valid for its type) or a value too large for an index (54000). Only input reaches those,
    /// so they are the client's 400, not a 500; the handlers check what they can first, with
    /// clearer messages, and this is the net under them.
    fn from_db_value_error(e: &sqlx::Error) -> Option<ApiError> {
        let sqlx::Error::Database(db) = e else { return None };
        let code = db.code()?;
        if !(code.starts_with("22") || code == "54000") {
            return None;
        }
        tracing::warn!(code = %code, error = %db.message(), "a request value was refused by the database");
        Some(ApiError::BadRequest(format!(
            "A value in this request cannot be stored or compared: {}",
            db.message()
        )))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            // The request id is on the surrounding span.
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        if let ApiError::RouteNotFound(path) = &self {
            return route_not_found(path);
        }
        let status = self.status();
        let mut res = (status, axum::Json(json!({"errors": [self.body_item()]}))).into_response();
        if let ApiError::InvalidToken(_) = &self {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        res.extensions_mut().insert(ErrorRendered);
        res
    }
}

/// Marks a response produced by `ApiError` (the request log uses it).
#[derive(Clone, Copy)]
pub struct ErrorRendered;

/// Payload's body for a route that does not exist: no `errors` array.
pub fn route_not_found(path: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": format!("Route not found \"{path}\"")})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_message_uses_labels_then_paths() {
        let v = Validation {
            collection: "pages".into(),
            id: None,
            errors: vec![
                FieldError::new("tenant", Some("Assigned Tenant"), "This field is required."),
                FieldError::new("title", Some("Title"), "This field is required."),
            ],
        };
        assert_eq!(
            v.message(),
            "The following fields are invalid: Assigned Tenant, Title"
        );
        let one = Validation {
            errors: vec![FieldError::new("tenant", None, "x")],
            ..v
        };
        assert_eq!(one.message(), "The following field is invalid: tenant");
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let e = ApiError::Internal(anyhow::anyhow!("password=hunter2 connection refused"));
        assert_eq!(e.body_item(), json!({"message": "Something went wrong."}));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
