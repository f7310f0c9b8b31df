//! Write validation: a request body becomes typed column values, or a `ValidationError` that
//! lists every failing field at once (Payload's messages, in schema order).

use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::collections::decl::{
    Block, ChildDecl, ChildKind, CollectionDecl, Field, Format, Kind, SubField, SubKind,
};
use crate::collections::engine::query::parse_date;
use crate::http::error::FieldError;

pub const REQUIRED: &str = "This field is required.";
pub const INVALID_SELECTION: &str = "This field has an invalid selection.";
pub const UNIQUE: &str = "Value must be unique";

/// A typed value ready to bind.
#[derive(Debug, Clone)]
pub enum WriteVal {
    Null,
    Text(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    Ts(OffsetDateTime),
    Uuid(Uuid),
    Json(Value),
    Point(f64, f64),
    Vector(String),
    List(Vec<String>),
    /// Plaintext of a secret field (encrypted when bound).
    Secret(String),
    /// Plain password (hashed when bound).
    Password(String),
    /// Child-table rows, normalised to wire names.
    Rows(Vec<Map<String, Value>>),
}

/// The writable fields of a body, flattened to declaration names (`seo.title`).
pub fn incoming(decl: &CollectionDecl, body: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for field in decl.fields {
        if !field.writable() {
            continue;
        }
        let mut cur: Option<&Value> = None;
        for (i, part) in field.name.split('.').enumerate() {
            cur = if i == 0 {
                body.get(part)
            } else {
                cur.and_then(|v| v.get(part))
            };
        }
        if let Some(v) = cur {
            out.insert(field.name.to_string(), v.clone());
        }
    }
    out
}

fn msg(path: &str, field: &Field, message: impl Into<String>) -> FieldError {
    FieldError::new(path, Some(field.label), message)
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Converts and checks the fields present in `data`; `required_from` is the merged document
/// the required rule runs against (the data itself on create, stored + patch on update).
pub fn check(
    decl: &CollectionDecl,
    data: &Map<String, Value>,
    merged: &Map<String, Value>,
) -> (Vec<(&'static Field, WriteVal)>, Vec<FieldError>) {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for field in decl.fields {
        let present = data.get(field.name);
        if field.required && !matches!(field.kind, Kind::Password) {
            let value = present.or_else(|| merged.get(field.name));
            if value.is_none_or(is_blank) {
                errors.push(msg(field.name, field, REQUIRED));
                continue;
            }
        }
        let Some(v) = present else { continue };
        match convert(field, v, &mut errors) {
            Some(w) => values.push((field, w)),
            None => continue,
        }
    }
    (values, errors)
}

fn convert(field: &'static Field, v: &Value, errors: &mut Vec<FieldError>) -> Option<WriteVal> {
    let path = field.name;
    let before = errors.len();
    if v.is_null() {
        return Some(match field.kind {
            Kind::List { .. } => WriteVal::List(Vec::new()),
            Kind::Rows(_) | Kind::Blocks(_) => WriteVal::Json(Value::Array(Vec::new())),
            Kind::Child(_) => WriteVal::Rows(Vec::new()),
            Kind::Checkbox => WriteVal::Bool(false),
            _ => WriteVal::Null,
        });
    }
    let text = |errors: &mut Vec<FieldError>| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                errors.push(msg(path, field, "This field must be text."));
                None
            }
        }
    };
    let result = match field.kind {
        Kind::Text | Kind::Textarea => {
            let s = text(errors)?;
            check_len(field, &s, errors);
            check_format(field, &s, errors);
            Some(WriteVal::Text(s))
        }
        Kind::Email => {
            let s = text(errors)?.trim().to_lowercase();
            if !valid_email(&s) {
                errors.push(msg(path, field, "Please enter a valid email address."));
            }
            check_len(field, &s, errors);
            Some(WriteVal::Text(s))
        }
        Kind::Select(options) => {
            let s = text(errors)?;
            if !options.contains(&s.as_str()) {
                errors.push(msg(path, field, INVALID_SELECTION));
            }
            Some(WriteVal::Text(s))
        }
        Kind::Int | Kind::BigInt => match number(v) {
            Some(n) if n.fract() == 0.0 && (field_kind_int_range(field.kind)).contains(&n) => {
                Some(WriteVal::Int(n as i64))
            }
            _ => {
                errors.push(msg(path, field, "Please enter a valid number."));
                None
            }
        },
        Kind::Numeric => match number(v) {
            Some(n) => Some(WriteVal::Num(n)),
            None => {
                errors.push(msg(path, field, "Please enter a valid number."));
                None
            }
        },
        Kind::Checkbox => match v {
            Value::Bool(b) => Some(WriteVal::Bool(*b)),
            Value::String(s) if s == "true" || s == "false" => Some(WriteVal::Bool(s == "true")),
            _ => {
                errors.push(msg(path, field, "This field must be true or false."));
                None
            }
        },
        Kind::Date => {
            let s = text(errors)?;
            match parse_date(&s) {
                Some(t) => Some(WriteVal::Ts(t)),
                None => {
                    errors.push(msg(path, field, format!("\"{s}\" is not a valid date.")));
                    None
                }
            }
        }
        Kind::Relation(_) | Kind::Upload(_) | Kind::IdRef => {
            // A populated document sent back is accepted by its id, as Payload does.
            let id = match v {
                Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_string),
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            match id.and_then(|s| Uuid::parse_str(&s).ok()) {
                Some(u) => Some(WriteVal::Uuid(u)),
                None => {
                    errors.push(FieldError::new(path, Some(field.label), INVALID_SELECTION));
                    None
                }
            }
        }
        Kind::Json | Kind::RichText => Some(WriteVal::Json(v.clone())),
        Kind::Point => match point(v) {
            Some((lng, lat)) => Some(WriteVal::Point(lng, lat)),
            None => {
                errors.push(msg(
                    path,
                    field,
                    "This field must be [longitude, latitude] within -180..180 and -90..90.",
                ));
                None
            }
        },
        Kind::Vector => {
            let nums: Option<Vec<f64>> = v.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect());
            match nums {
                Some(n) if n.len() == 768 && v.as_array().is_some_and(|a| a.len() == 768) => {
                    let text: Vec<String> = n.iter().map(|x| x.to_string()).collect();
                    Some(WriteVal::Vector(format!("[{}]", text.join(","))))
                }
                _ => {
                    errors.push(msg(path, field, "This field must be an array of 768 numbers."));
                    None
                }
            }
        }
        Kind::List { sub, options } => {
            let items = list_items(v, sub);
            match items {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if options.is_some_and(|o| !o.contains(&item.as_str())) {
                            errors.push(FieldError::new(
                                format!("{path}.{i}.{sub}"),
                                Some(field.label),
                                INVALID_SELECTION,
                            ));
                        }
                    }
                    Some(WriteVal::List(items))
                }
                None => {
                    errors.push(msg(path, field, INVALID_SELECTION));
                    None
                }
            }
        }
        Kind::Rows(sub) => rows(path, field, v, sub, errors).map(WriteVal::Json),
        Kind::Blocks(blocks) => blocks_value(path, field, v, blocks, errors).map(WriteVal::Json),
        Kind::Child(child) => child_rows(path, field, v, child, errors).map(WriteVal::Rows),
        Kind::Secret => {
            let s = text(errors)?;
            Some(WriteVal::Secret(s))
        }
        Kind::Password => {
            let s = text(errors)?;
            if s.chars().count() < crate::auth::password::MIN_LENGTH {
                errors.push(msg(
                    path,
                    field,
                    format!(
                        "This value must be longer than the minimum length of {} characters.",
                        crate::auth::password::MIN_LENGTH
                    ),
                ));
            }
            Some(WriteVal::Password(s))
        }
    };
    if errors.len() > before {
        None
    } else {
        result
    }
}

fn field_kind_int_range(kind: Kind) -> std::ops::RangeInclusive<f64> {
    match kind {
        Kind::Int => (i32::MIN as f64)..=(i32::MAX as f64),
        _ => -9.0e15..=9.0e15,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn point(v: &Value) -> Option<(f64, f64)> {
    let a = v.as_array()?;
    if a.len() != 2 {
        return None;
    }
    let (lng, lat) = (number(&a[0])?, number(&a[1])?);
    ((-180.0..=180.0).contains(&lng) && (-90.0..=90.0).contains(&lat)).then_some((lng, lat))
}

/// `[{"tag":"x"}]` or `["x"]` → `["x"]`.
fn list_items(v: &Value, sub: &str) -> Option<Vec<String>> {
    let a = v.as_array()?;
    a.iter()
        .map(|item| match item {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get(sub).and_then(Value::as_str).map(str::to_string),
            _ => None,
        })
        .collect()
}

fn check_len(field: &Field, s: &str, errors: &mut Vec<FieldError>) {
    if let Some(max) = field.max_len {
        if s.chars().count() > max {
            errors.push(msg(
                field.name,
                field,
                format!("This value must be shorter than the max length of {max} characters."),
            ));
        }
    }
}

fn check_format(field: &Field, s: &str, errors: &mut Vec<FieldError>) {
    let Some(format) = field.format else { return };
    let ok = match format {
        Format::Handle => valid_label(s),
        Format::Slug => valid_slug(s),
        Format::CountryCode => s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()),
        Format::HttpUrl => valid_http_url(s),
    };
    if !ok {
        let what = match format {
            Format::Handle => "lower-case letters, digits and inner hyphens (at most 63 characters)",
            Format::Slug => "lower-case words joined by hyphens, segments separated by /",
            Format::CountryCode => "an ISO 3166-1 alpha-2 code in upper case",
            Format::HttpUrl => "an absolute http(s) URL",
        };
        errors.push(msg(field.name, field, format!("This value must be {what}.")));
    }
}

/// One DNS label: `^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`.
pub fn valid_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A host name: dot-separated labels (IDNs as punycode).
pub fn valid_hostname(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(valid_label)
}

fn valid_slug(s: &str) -> bool {
    s.len() <= 200
        && !s.is_empty()
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .split('-')
                    .all(|w| !w.is_empty() && w.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        })
}

fn valid_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

fn valid_http_url(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
        !host.is_empty() && !s.contains(char::is_whitespace)
    })
}

/// A 24-hex row id, as Payload generates them.
pub fn row_id() -> String {
    crate::util::random_hex(12)
}

fn sub_value(
    path: &str,
    sub: &SubField,
    v: Option<&Value>,
    label: &str,
    errors: &mut Vec<FieldError>,
) -> Value {
    let present = v.filter(|x| !x.is_null());
    if sub.required && present.is_none_or(is_blank) {
        errors.push(FieldError::new(path, Some(label), REQUIRED));
        return Value::Null;
    }
    let Some(v) = present else {
        return match sub.kind {
            SubKind::Rows(_) => Value::Array(Vec::new()),
            _ => Value::Null,
        };
    };
    match sub.kind {
        SubKind::Text => {
            if !v.is_string() {
                errors.push(FieldError::new(path, Some(label), "This field must be text."));
            }
            v.clone()
        }
        SubKind::RichText => v.clone(),
        SubKind::Upload(_) => {
            let id = v.as_str().or_else(|| v.get("id").and_then(Value::as_str));
            match id.and_then(|s| Uuid::parse_str(s).ok()) {
                Some(u) => Value::String(u.to_string()),
                None => {
                    errors.push(FieldError::new(path, Some(label), INVALID_SELECTION));
                    Value::Null
                }
            }
        }
        SubKind::Select(options) => {
            if !v.as_str().is_some_and(|s| options.contains(&s)) {
                errors.push(FieldError::new(path, Some(label), INVALID_SELECTION));
            }
            v.clone()
        }
        SubKind::Rows(fields) => {
            let mut tmp_errors = Vec::new();
            let out = rows_inner(path, label, v, fields, &mut tmp_errors);
            errors.extend(tmp_errors);
            out.unwrap_or(Value::Array(Vec::new()))
        }
    }
}

fn rows(
    path: &str,
    field: &Field,
    v: &Value,
    fields: &[SubField],
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    rows_inner(path, field.label, v, fields, errors)
}

fn rows_inner(
    path: &str,
    label: &str,
    v: &Value,
    fields: &[SubField],
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    let Some(items) = v.as_array() else {
        errors.push(FieldError::new(path, Some(label), "This field must be an array."));
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            errors.push(FieldError::new(
                format!("{path}.{i}"),
                Some(label),
                "This row must be an object.",
            ));
            continue;
        };
        let mut row = Map::new();
        row.insert("id".into(), Value::String(keep_or_new_id(obj)));
        for sub in fields {
            let p = format!("{path}.{i}.{}", sub.name);
            row.insert(
                sub.name.into(),
                sub_value(&p, sub, obj.get(sub.name), label, errors),
            );
        }
        out.push(Value::Object(row));
    }
    Some(Value::Array(out))
}

fn keep_or_new_id(obj: &Map<String, Value>) -> String {
    obj.get("id")
        .and_then(Value::as_str)
        .filter(|s| s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(row_id)
}

fn blocks_value(
    path: &str,
    field: &Field,
    v: &Value,
    blocks: &[Block],
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    let Some(items) = v.as_array() else {
        errors.push(msg(path, field, "This field must be an array."));
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            errors.push(FieldError::new(
                format!("{path}.{i}"),
                Some(field.label),
                "This block must be an object.",
            ));
            continue;
        };
        let block_type = obj.get("blockType").and_then(Value::as_str).unwrap_or("");
        let Some(block) = blocks.iter().find(|b| b.slug == block_type) else {
            errors.push(FieldError::new(
                format!("{path}.{i}.blockType"),
                Some(field.label),
                INVALID_SELECTION,
            ));
            continue;
        };
        let mut row = Map::new();
        row.insert("id".into(), Value::String(keep_or_new_id(obj)));
        row.insert("blockType".into(), Value::String(block.slug.into()));
        row.insert(
            "blockName".into(),
            obj.get("blockName")
                .filter(|b| b.is_string())
                .cloned()
                .unwrap_or(Value::Null),
        );
        for sub in block.fields {
            let p = format!("{path}.{i}.{}", sub.name);
            row.insert(
                sub.name.into(),
                sub_value(&p, sub, obj.get(sub.name), field.label, errors),
            );
        }
        out.push(Value::Object(row));
    }
    Some(Value::Array(out))
}

fn child_rows(
    path: &str,
    field: &Field,
    v: &Value,
    child: &ChildDecl,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<Map<String, Value>>> {
    let Some(items) = v.as_array() else {
        errors.push(msg(path, field, "This field must be an array."));
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut row = Map::new();
        match (item, child.bare_string) {
            (Value::String(s), Some(key)) => {
                row.insert(key.into(), Value::String(s.clone()));
            }
            (Value::Object(o), _) => {
                if let Some(id) = o
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok())
                {
                    row.insert("id".into(), Value::String(id.to_string()));
                }
                for (wire, _, _) in child.columns {
                    if let Some(x) = o.get(*wire) {
                        row.insert(wire.to_string(), x.clone());
                    }
                }
            }
            _ => {
                errors.push(FieldError::new(
                    format!("{path}.{i}"),
                    Some(field.label),
                    "This row must be an object.",
                ));
                continue;
            }
        }
        for (wire, _, kind) in child.columns {
            let p = format!("{path}.{i}.{wire}");
            let val = row.get(*wire).cloned().unwrap_or(Value::Null);
            match kind {
                ChildKind::Text => {
                    let ok = val
                        .as_str()
                        .map(|s| s.trim().to_lowercase())
                        .filter(|s| valid_hostname(s));
                    match ok {
                        Some(h) => {
                            row.insert(wire.to_string(), Value::String(h));
                        }
                        None => errors.push(FieldError::new(
                            p,
                            Some(field.label),
                            "This value must be a valid host name.",
                        )),
                    }
                }
                ChildKind::Bool => {
                    if !val.is_null() && !val.is_boolean() {
                        errors.push(FieldError::new(
                            p,
                            Some(field.label),
                            "This field must be true or false.",
                        ));
                    }
                }
                ChildKind::Date => {
                    if let Some(s) = val.as_str() {
                        if parse_date(s).is_none() {
                            errors.push(FieldError::new(
                                p,
                                Some(field.label),
                                format!("\"{s}\" is not a valid date."),
                            ));
                        }
                    }
                }
                ChildKind::Relation(_) => {
                    let id = val.as_str().or_else(|| val.get("id").and_then(Value::as_str));
                    let required = *wire == "tenant";
                    match id.map(Uuid::parse_str) {
                        Some(Ok(u)) => {
                            row.insert(wire.to_string(), Value::String(u.to_string()));
                        }
                        None if !required => {}
                        _ => errors.push(FieldError::new(p, Some(field.label), INVALID_SELECTION)),
                    }
                }
                ChildKind::List(options) => match list_items(&val, "role") {
                    Some(items)
                        if !items.is_empty() && items.iter().all(|r| options.contains(&r.as_str())) =>
                    {
                        row.insert(
                            wire.to_string(),
                            Value::Array(items.into_iter().map(Value::String).collect()),
                        );
                    }
                    _ => errors.push(FieldError::new(p, Some(field.label), INVALID_SELECTION)),
                },
                ChildKind::Select(options) => {
                    if !val.is_null() && !val.as_str().is_some_and(|s| options.contains(&s)) {
                        errors.push(FieldError::new(p, Some(field.label), INVALID_SELECTION));
                    }
                }
            }
        }
        out.push(row);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_slugs_hosts_and_emails() {
        assert!(valid_label("fashionista-sa") && !valid_label("-x") && !valid_label("A") && !valid_label(""));
        assert!(valid_hostname("shop.fashionista.sa") && valid_hostname("xn--mgberp4a5d4ar"));
        assert!(
            valid_slug("about/our-team") && !valid_slug("About") && !valid_slug("a--b") && !valid_slug("a/")
        );
        assert!(valid_email("a@b.sa") && !valid_email("a@b") && !valid_email("no-at.sa"));
    }

    #[test]
    fn every_failing_field_is_listed_in_schema_order() {
        let decl = &crate::collections::decls::pages::DECL;
        let body = serde_json::json!({"slug": "Not A Slug", "status": "archived", "publishAt": "not-a-date"});
        let data = incoming(decl, body.as_object().unwrap());
        let (_, errors) = check(decl, &data, &data);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["tenant", "title", "slug", "status", "publishAt"]);
        assert_eq!(errors[0].message, REQUIRED);
        assert_eq!(errors[3].message, INVALID_SELECTION);
        assert_eq!(errors[4].message, "\"not-a-date\" is not a valid date.");
    }

    #[test]
    fn blocks_get_ids_and_unknown_types_are_refused() {
        let decl = &crate::collections::decls::pages::DECL;
        let body = serde_json::json!({"layout": [
            {"blockType": "hero", "title": "Hi"},
            {"blockType": "nope"},
            {"blockType": "cta", "label": "Go"}
        ]});
        let data = incoming(decl, body.as_object().unwrap());
        let field = decl.field("layout").unwrap();
        let mut errors = Vec::new();
        let v = convert(field, &data["layout"], &mut errors);
        assert!(v.is_none());
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["layout.1.blockType", "layout.2.link"]);
        let mut ok_errors = Vec::new();
        let ok = convert(
            field,
            &serde_json::json!([{"blockType":"hero","title":"Hi"}]),
            &mut ok_errors,
        );
        let Some(WriteVal::Json(Value::Array(rows))) = ok else {
            panic!("converted")
        };
        assert_eq!(rows[0]["id"].as_str().unwrap().len(), 24);
        assert_eq!(rows[0]["subtitle"], Value::Null);
        assert_eq!(rows[0]["blockName"], Value::Null);
    }
}
