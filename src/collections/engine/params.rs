//! The find parameters of a request (`where`, `depth`, `limit`, `page`, `pagination`, `sort`,
//! `select`, `populate`), read from the parsed query tree with Payload's defaults and quirks.

use serde_json::Value;

use crate::http::error::ApiError;

pub const DEFAULT_DEPTH: u32 = 2;
pub const MAX_DEPTH: u32 = 10;
pub const DEFAULT_LIMIT: i64 = 10;

#[derive(Debug, Clone)]
pub struct FindParams {
    pub where_: Option<Value>,
    pub depth: u32,
    /// The page size; 0 = no limit.
    pub limit: i64,
    pub page: i64,
    /// `pagination=false`: no count, return up to `limit` docs (all without one).
    pub pagination: bool,
    pub sort: Vec<String>,
    pub select: Option<Value>,
    pub populate: Option<Value>,
}

impl FindParams {
    /// Reads the parameters; only clearly invalid numbers are refused (Payload would 500).
    pub fn from_tree(tree: &Value) -> Result<FindParams, ApiError> {
        let where_ = match tree.get("where") {
            None => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => Some(v),
                _ => {
                    return Err(ApiError::QueryValue {
                        path: "where".into(),
                        message: "The where query is not a valid JSON object.".into(),
                    })
                }
            },
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(Value::Array(a)) if a.is_empty() => None,
            Some(_) => {
                return Err(ApiError::QueryValue {
                    path: "where".into(),
                    message: "The where query must be an object.".into(),
                })
            }
        };
        let depth = match int_param(tree, "depth")? {
            None => DEFAULT_DEPTH,
            Some(d) if d < 0 => 0,
            Some(d) => (d as u32).min(MAX_DEPTH),
        };
        let pagination = tree.get("pagination").and_then(Value::as_str) != Some("false");
        let limit = match int_param(tree, "limit")? {
            None if pagination => DEFAULT_LIMIT,
            None => 0,
            Some(l) if l < 0 => return Err(ApiError::bad_request("Invalid query parameter: limit")),
            Some(l) => l,
        };
        let page = match int_param(tree, "page")? {
            None | Some(0) => 1,
            Some(p) if p < 0 => return Err(ApiError::bad_request("Invalid query parameter: page")),
            Some(p) => p,
        };
        let sort = match tree.get("sort") {
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .flat_map(|s| s.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        };
        Ok(FindParams {
            where_,
            depth,
            limit,
            page,
            pagination,
            sort,
            select: tree.get("select").filter(|v| v.is_object()).cloned(),
            populate: tree.get("populate").filter(|v| v.is_object()).cloned(),
        })
    }
}

/// An integer parameter: absent or non-numeric → None; a fraction or overflow → 400.
fn int_param(tree: &Value, name: &str) -> Result<Option<i64>, ApiError> {
    let raw = match tree.get(name) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Ok(None),
    };
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(v) = raw.parse::<i64>() {
        return Ok(Some(v));
    }
    match raw.parse::<f64>() {
        // A number that is not an integer, or too large: refused instead of Payload's 500.
        Ok(_) => Err(ApiError::bad_request(format!("Invalid query parameter: {name}"))),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collections::engine::qs;

    fn params(q: &str) -> Result<FindParams, ApiError> {
        FindParams::from_tree(&qs::parse(q))
    }

    #[test]
    fn defaults_and_clamps() {
        let p = params("").unwrap();
        assert_eq!((p.depth, p.limit, p.page, p.pagination), (2, 10, 1, true));
        let p = params("depth=99&limit=0&page=0").unwrap();
        assert_eq!((p.depth, p.limit, p.page), (10, 0, 1));
        let p = params("depth=-3&limit=abc&pagination=false").unwrap();
        assert_eq!((p.depth, p.limit, p.pagination), (0, 0, false));
        assert_eq!(params("limit=abc").unwrap().limit, 10);
        let p = params("pagination=false").unwrap();
        assert_eq!(p.limit, 0);
    }

    #[test]
    fn invalid_numbers_are_400() {
        assert!(
            matches!(params("limit=-1"), Err(ApiError::BadRequest(m)) if m == "Invalid query parameter: limit")
        );
        assert!(
            matches!(params("page=1.5"), Err(ApiError::BadRequest(m)) if m == "Invalid query parameter: page")
        );
    }

    #[test]
    fn sort_forms_and_json_where() {
        assert_eq!(
            params("sort=title,-createdAt").unwrap().sort,
            vec!["title", "-createdAt"]
        );
        assert_eq!(params("sort[0]=a&sort[1]=-b").unwrap().sort, vec!["a", "-b"]);
        assert_eq!(params("sort=a&sort=-b").unwrap().sort, vec!["a", "-b"]);
        let p = params("where=%7B%22title%22%3A%7B%22equals%22%3A5%7D%7D").unwrap();
        assert_eq!(p.where_.unwrap()["title"]["equals"], 5);
        assert!(matches!(
            params("where=%7Bnope"),
            Err(ApiError::QueryValue { .. })
        ));
    }
}
