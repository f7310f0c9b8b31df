//! The `where` language compiled to SQL.
//!
//! A `where` tree is first resolved against the declarations into a [`Cond`] (paths matched to
//! columns, values coerced per field type, bad paths collected), then rendered with
//! `QueryBuilder::push_bind`. A column name reaches SQL only after it matched a declaration;
//! every value is a bound parameter.

use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::collections::access::RowFilter;
use crate::collections::decl::{ChildDecl, ChildKind, CollectionDecl, Field, Kind, Scope, Visibility};
use crate::collections::Registry;
use crate::http::error::ApiError;

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlVal {
    Text(String),
    Num(f64),
    Bool(bool),
    Uuid(Uuid),
    Ts(OffsetDateTime),
}

/// A column of some table alias.
#[derive(Debug, Clone, PartialEq)]
pub struct Col {
    pub alias: String,
    pub column: String,
}

impl Col {
    fn sql(&self) -> String {
        format!("{}.{}", self.alias, self.column)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => " = ",
            CmpOp::Ne => " <> ",
            CmpOp::Gt => " > ",
            CmpOp::Gte => " >= ",
            CmpOp::Lt => " < ",
            CmpOp::Lte => " <= ",
        }
    }
}

/// A resolved condition.
#[derive(Debug, Clone)]
pub enum Cond {
    True,
    False,
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp(Col, CmpOp, SqlVal),
    IsNull(Col),
    NotNull(Col),
    In(Col, Vec<SqlVal>),
    ILike(Col, String),
    /// `$v = ANY(col)` (text[] columns).
    ArrayHas(Col, SqlVal),
    /// `col && $vals` (text[] columns).
    ArrayOverlaps(Col, Vec<String>),
    ArrayEmpty(Col),
    /// Text inside jsonb: `col #>> path`.
    JsonText(Col, Vec<String>, Box<TextTest>),
    /// Some element of a jsonb array matches.
    JsonElem(Col, String, Box<TextTest>),
    Near {
        col: Col,
        lng: f64,
        lat: f64,
        max: Option<f64>,
        min: Option<f64>,
    },
    Geo {
        col: Col,
        func: &'static str,
        geojson: String,
    },
    /// `fk IN (SELECT id FROM table alias WHERE cond)`.
    Sub {
        fk: Col,
        table: &'static str,
        alias: String,
        cond: Box<Cond>,
    },
    /// `EXISTS (SELECT 1 FROM child alias WHERE owner AND fixed AND cond)`.
    Child {
        owner: Col,
        child: &'static ChildDecl,
        alias: String,
        cond: Box<Cond>,
    },
    /// The user row (aliased `user_alias`) has an active membership in one of `tenants`.
    MemberOf {
        user_alias: String,
        alias: String,
        tenants: Vec<Uuid>,
    },
    /// Trusted SQL built from declared column names only.
    Sql(String),
}

/// A test on a text expression (inside jsonb).
#[derive(Debug, Clone, PartialEq)]
pub enum TextTest {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    ILike(String),
    Exists(bool),
}

/// Compiles `where` trees and access filters for one request.
pub struct Compiler<'a> {
    pub registry: &'a Registry,
    /// Paths that cannot be queried, reported together.
    bad_paths: Vec<String>,
    /// Anonymous callers cannot query non-public fields.
    pub public_only: bool,
    next_alias: usize,
}

enum Resolved {
    Field(&'static Field, Col),
    /// A path through a relationship: resolve the rest in the target collection.
    Through {
        fk: Col,
        target: &'static CollectionDecl,
        rest: String,
    },
    Child {
        owner: Col,
        child: &'static ChildDecl,
        column: &'static str,
        kind: ChildKind,
    },
    Json(Col, Vec<String>),
    Elem(Col, String),
    Id(Col),
    Timestamp(Col),
}

impl<'a> Compiler<'a> {
    pub fn new(registry: &'a Registry, public_only: bool) -> Self {
        Compiler {
            registry,
            bad_paths: Vec::new(),
            public_only,
            next_alias: 1,
        }
    }

    fn alias(&mut self) -> String {
        let a = format!("t{}", self.next_alias);
        self.next_alias += 1;
        a
    }

    /// Compiles a `where` object for `decl` rows aliased `alias`.
    pub fn compile(
        &mut self,
        decl: &'static CollectionDecl,
        alias: &str,
        where_: &Value,
    ) -> Result<Cond, ApiError> {
        let cond = self.where_obj(decl, alias, where_)?;
        if !self.bad_paths.is_empty() {
            let mut paths = std::mem::take(&mut self.bad_paths);
            paths.dedup();
            return Err(ApiError::Query(paths));
        }
        Ok(cond)
    }

    fn where_obj(&mut self, decl: &'static CollectionDecl, alias: &str, w: &Value) -> Result<Cond, ApiError> {
        let Value::Object(map) = w else {
            return Err(ApiError::QueryValue {
                path: "where".into(),
                message: "The where query must be an object.".into(),
            });
        };
        let mut all = Vec::new();
        for (key, value) in map {
            let lower = key.to_ascii_lowercase();
            if lower == "and" || lower == "or" {
                let items = match value {
                    Value::Array(items) => items.clone(),
                    Value::Object(o) => o.values().cloned().collect(),
                    _ => Vec::new(),
                };
                let mut parts = Vec::new();
                for item in &items {
                    parts.push(self.where_obj(decl, alias, item)?);
                }
                if parts.is_empty() {
                    continue;
                }
                all.push(if lower == "and" {
                    Cond::And(parts)
                } else {
                    Cond::Or(parts)
                });
                continue;
            }
            let path = key.replace("__", ".");
            let Value::Object(ops) = value else {
                self.bad_paths.push(key.clone());
                continue;
            };
            for (op, v) in ops {
                if let Some(c) = self.path_cond(decl, alias, &path, op, v)? {
                    all.push(c);
                }
            }
        }
        Ok(match all.len() {
            0 => Cond::True,
            1 => all.pop().unwrap_or(Cond::True),
            _ => Cond::And(all),
        })
    }

    fn resolve(&mut self, decl: &'static CollectionDecl, alias: &str, path: &str) -> Option<Resolved> {
        let col = |c: &str| Col {
            alias: alias.to_string(),
            column: c.to_string(),
        };
        match path {
            "id" => return Some(Resolved::Id(col("id"))),
            "createdAt" => return Some(Resolved::Timestamp(col("created_at"))),
            "updatedAt" => return Some(Resolved::Timestamp(col("updated_at"))),
            _ => {}
        }
        // Field names may contain dots (groups): try the longest declared prefix first.
        let mut split_points: Vec<usize> = path.match_indices('.').map(|(i, _)| i).collect();
        split_points.push(path.len());
        for &end in split_points.iter().rev() {
            let head = &path[..end];
            let rest = path.get(end + 1..).unwrap_or("");
            let Some(field) = decl.field(head) else { continue };
            if !self.queryable(field) {
                return None;
            }
            if rest.is_empty() {
                return match field.kind {
                    Kind::Child(_) | Kind::Vector | Kind::Secret | Kind::Password => None,
                    _ => Some(Resolved::Field(field, col(field.column))),
                };
            }
            return match field.kind {
                Kind::Relation(target) | Kind::Upload(target) => Some(Resolved::Through {
                    fk: col(field.column),
                    target: self.registry.get(target)?,
                    rest: rest.to_string(),
                }),
                Kind::Child(child) => {
                    let (_, column, kind) = child.columns.iter().find(|(w, _, _)| *w == rest)?;
                    Some(Resolved::Child {
                        owner: col("id"),
                        child,
                        column,
                        kind: *kind,
                    })
                }
                Kind::Json | Kind::RichText => Some(Resolved::Json(
                    col(field.column),
                    rest.split('.').map(String::from).collect(),
                )),
                Kind::Rows(_) | Kind::Blocks(_) if !rest.contains('.') => {
                    Some(Resolved::Elem(col(field.column), rest.to_string()))
                }
                _ => None,
            };
        }
        None
    }

    fn queryable(&self, field: &Field) -> bool {
        match field.visibility {
            Visibility::Hidden | Visibility::WriteOnly => false,
            Visibility::NotPublic => !self.public_only,
            _ => !matches!(field.kind, Kind::Secret | Kind::Password),
        }
    }

    fn path_cond(
        &mut self,
        decl: &'static CollectionDecl,
        alias: &str,
        path: &str,
        op: &str,
        v: &Value,
    ) -> Result<Option<Cond>, ApiError> {
        let Some(resolved) = self.resolve(decl, alias, path) else {
            self.bad_paths.push(path.to_string());
            return Ok(None);
        };
        if op == "all" {
            return Err(ApiError::QueryValue {
                path: path.into(),
                message: format!("The operator \"all\" is not supported on path {path}."),
            });
        }
        if !KNOWN_OPS.contains(&op) {
            // Payload drops unknown operators silently; we keep that and log it.
            tracing::warn!(path, operator = op, "unknown where operator ignored");
            return Ok(None);
        }
        match resolved {
            Resolved::Through { fk, target, rest } => {
                let sub_alias = self.alias();
                let inner = self.path_cond(target, &sub_alias, &rest, op, v)?;
                Ok(inner.map(|cond| Cond::Sub {
                    fk,
                    table: target.table,
                    alias: sub_alias,
                    cond: Box::new(cond),
                }))
            }
            Resolved::Child {
                owner,
                child,
                column,
                kind,
            } => {
                let sub_alias = self.alias();
                let c = Col {
                    alias: sub_alias.clone(),
                    column: column.to_string(),
                };
                let kind = match kind {
                    ChildKind::Text | ChildKind::Select(_) => Kind::Text,
                    ChildKind::Bool => Kind::Checkbox,
                    ChildKind::Date => Kind::Date,
                    ChildKind::Relation(t) => Kind::Relation(t),
                    ChildKind::List(_) => Kind::List {
                        sub: "",
                        options: None,
                    },
                };
                let inner = self.scalar_cond(path, kind, c, op, v)?;
                Ok(Some(Cond::Child {
                    owner,
                    child,
                    alias: sub_alias,
                    cond: Box::new(inner),
                }))
            }
            Resolved::Field(field, col) => self.scalar_cond(path, field.kind, col, op, v).map(Some),
            Resolved::Id(col) => self.scalar_cond(path, Kind::IdRef, col, op, v).map(Some),
            Resolved::Timestamp(col) => self.scalar_cond(path, Kind::Date, col, op, v).map(Some),
            Resolved::Json(col, keys) => {
                Ok(Some(Cond::JsonText(col, keys, Box::new(text_test(path, op, v)?))))
            }
            Resolved::Elem(col, key) => Ok(Some(Cond::JsonElem(col, key, Box::new(text_test(path, op, v)?)))),
        }
    }

    fn scalar_cond(
        &mut self,
        path: &str,
        kind: Kind,
        col: Col,
        op: &str,
        v: &Value,
    ) -> Result<Cond, ApiError> {
        let not_allowed = || ApiError::QueryValue {
            path: path.to_string(),
            message: format!("The operator \"{op}\" cannot be used on path {path}."),
        };
        if op == "exists" {
            let want = matches!(v, Value::Bool(true)) || v.as_str() == Some("true");
            return Ok(match kind {
                Kind::List { .. } => {
                    let empty = Cond::ArrayEmpty(col);
                    if want {
                        Cond::Not(Box::new(empty))
                    } else {
                        empty
                    }
                }
                _ if want => Cond::NotNull(col),
                _ => Cond::IsNull(col),
            });
        }
        match kind {
            Kind::Point => return self.geo_cond(path, col, op, v),
            Kind::List { .. } => {
                return match op {
                    "equals" | "contains" => Ok(match scalar_text(v) {
                        Some(s) => Cond::ArrayHas(col, SqlVal::Text(s)),
                        None => Cond::ArrayEmpty(col),
                    }),
                    "in" => Ok(Cond::ArrayOverlaps(col, list_values(v))),
                    "not_in" => Ok(Cond::Not(Box::new(Cond::ArrayOverlaps(col, list_values(v))))),
                    "not_equals" => Ok(match scalar_text(v) {
                        Some(s) => Cond::Not(Box::new(Cond::ArrayHas(col, SqlVal::Text(s)))),
                        None => Cond::True,
                    }),
                    _ => Err(not_allowed()),
                };
            }
            Kind::Json | Kind::RichText | Kind::Rows(_) | Kind::Blocks(_) => return Err(not_allowed()),
            _ => {}
        }
        let text_like = kind.is_text_like();
        match op {
            "like" | "not_like" | "contains" if text_like => {
                let s = scalar_text(v).unwrap_or_default();
                Ok(match op {
                    "like" => {
                        let words: Vec<Cond> = s
                            .split_whitespace()
                            .map(|w| Cond::ILike(col.clone(), format!("%{}%", escape_like(w))))
                            .collect();
                        if words.is_empty() {
                            Cond::True
                        } else {
                            Cond::And(words)
                        }
                    }
                    "not_like" => Cond::Not(Box::new(Cond::ILike(col, format!("%{}%", escape_like(&s))))),
                    _ => Cond::ILike(col, format!("%{}%", escape_like(&s))),
                })
            }
            // On number and id columns, `like` means equality (Payload quirk).
            "like" | "contains"
                if kind.is_number() || matches!(kind, Kind::IdRef | Kind::Relation(_) | Kind::Upload(_)) =>
            {
                self.scalar_cond(path, kind, col, "equals", v)
            }
            "like" | "not_like" | "contains" => Err(not_allowed()),
            "near" | "within" | "intersects" => Err(not_allowed()),
            "equals" | "not_equals" => {
                let val = coerce(path, kind, v)?;
                let eq = op == "equals";
                Ok(match val {
                    Coerced::Null => {
                        if eq {
                            Cond::IsNull(col)
                        } else {
                            Cond::NotNull(col)
                        }
                    }
                    Coerced::Never => {
                        if eq {
                            Cond::False
                        } else {
                            Cond::True
                        }
                    }
                    Coerced::Val(x) => {
                        if eq {
                            Cond::Cmp(col, CmpOp::Eq, x)
                        } else {
                            // Payload quirk: rows where the field is null match not_equals.
                            Cond::Or(vec![Cond::Cmp(col.clone(), CmpOp::Ne, x), Cond::IsNull(col)])
                        }
                    }
                    Coerced::Many(items) => {
                        let c = Cond::In(col, items);
                        if eq {
                            c
                        } else {
                            Cond::Not(Box::new(c))
                        }
                    }
                })
            }
            "in" | "not_in" => {
                let mut items = Vec::new();
                let mut has_null = false;
                for raw in list_raw(v) {
                    match coerce(path, kind, &raw)? {
                        Coerced::Val(x) => items.push(x),
                        Coerced::Null => has_null = true,
                        Coerced::Never => {}
                        Coerced::Many(m) => items.extend(m),
                    }
                }
                let mut cond = if items.is_empty() {
                    Cond::False
                } else {
                    Cond::In(col.clone(), items)
                };
                if has_null {
                    cond = Cond::Or(vec![cond, Cond::IsNull(col.clone())]);
                }
                if op == "in" {
                    Ok(cond)
                } else {
                    let negated = Cond::Not(Box::new(cond));
                    // not_in on a relationship also matches rows without one.
                    Ok(if kind.relation_target().is_some() && !has_null {
                        Cond::Or(vec![negated, Cond::IsNull(col)])
                    } else {
                        negated
                    })
                }
            }
            "greater_than" | "greater_than_equal" | "less_than" | "less_than_equal" => {
                if !(kind.is_number() || text_like || matches!(kind, Kind::Date | Kind::IdRef)) {
                    return Err(not_allowed());
                }
                let cmp = match op {
                    "greater_than" => CmpOp::Gt,
                    "greater_than_equal" => CmpOp::Gte,
                    "less_than" => CmpOp::Lt,
                    _ => CmpOp::Lte,
                };
                // Ids compare as text so any string is a valid bound.
                let (col, kind) = if matches!(kind, Kind::IdRef) {
                    (
                        Col {
                            alias: col.alias,
                            column: format!("{}::text", col.column),
                        },
                        Kind::Text,
                    )
                } else {
                    (col, kind)
                };
                Ok(match coerce(path, kind, v)? {
                    Coerced::Val(x) => Cond::Cmp(col, cmp, x),
                    _ => Cond::False,
                })
            }
            _ => Err(not_allowed()),
        }
    }

    fn geo_cond(&mut self, path: &str, col: Col, op: &str, v: &Value) -> Result<Cond, ApiError> {
        let bad = |message: String| ApiError::QueryValue {
            path: path.to_string(),
            message,
        };
        match op {
            "near" => {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Array(items) => items
                        .iter()
                        .map(|i| match i {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => String::new(),
                };
                let parts: Vec<&str> = text.split(',').map(str::trim).collect();
                let num = |i: usize| -> Result<Option<f64>, ApiError> {
                    match parts.get(i) {
                        None | Some(&"") | Some(&"null") => Ok(None),
                        Some(s) => s
                            .parse::<f64>()
                            .ok()
                            .filter(|n| n.is_finite())
                            .map(Some)
                            .ok_or_else(|| {
                                bad(format!(
                                    "The near value of {path} must be \"lng,lat,maxMeters,minMeters\"."
                                ))
                            }),
                    }
                };
                let (Some(lng), Some(lat)) = (num(0)?, num(1)?) else {
                    return Err(bad(format!(
                        "The near value of {path} must be \"lng,lat,maxMeters,minMeters\"."
                    )));
                };
                if !(-180.0..=180.0).contains(&lng) || !(-90.0..=90.0).contains(&lat) {
                    return Err(bad(format!(
                        "The near value of {path} is outside the valid longitude/latitude range."
                    )));
                }
                Ok(Cond::Near {
                    col,
                    lng,
                    lat,
                    max: num(2)?,
                    min: num(3)?,
                })
            }
            "within" | "intersects" => {
                let geo = match v {
                    Value::String(s) => serde_json::from_str::<Value>(s).ok(),
                    Value::Object(_) => Some(numbers_from_strings(v)),
                    _ => None,
                };
                let Some(geo) = geo.filter(|g| g.get("type").is_some() && g.get("coordinates").is_some())
                else {
                    return Err(bad(format!(
                        "The {op} value of {path} must be a GeoJSON geometry."
                    )));
                };
                Ok(Cond::Geo {
                    col,
                    func: if op == "within" {
                        "ST_Within"
                    } else {
                        "ST_Intersects"
                    },
                    geojson: geo.to_string(),
                })
            }
            _ => Err(bad(format!(
                "The operator \"{op}\" cannot be used on path {path}."
            ))),
        }
    }

    /// The SQL condition of an access decision's row filter for `decl` aliased `alias`.
    pub fn row_filter(&mut self, decl: &'static CollectionDecl, alias: &str, f: &RowFilter) -> Cond {
        let tenant_col = decl.tenant_column().map(|c| Col {
            alias: alias.to_string(),
            column: c.to_string(),
        });
        match f {
            RowFilter::Nothing => Cond::False,
            RowFilter::TenantIn(ids) => match tenant_col {
                Some(c) if !ids.is_empty() => Cond::In(c, ids.iter().map(|i| SqlVal::Uuid(*i)).collect()),
                _ => Cond::False,
            },
            RowFilter::TenantNull => match tenant_col {
                Some(c) if decl.scope == Scope::TenantOptional => Cond::IsNull(c),
                _ => Cond::False,
            },
            RowFilter::Live => Cond::Sql(format!(
                "({a}.status = 'published' AND ({a}.publish_at IS NULL OR {a}.publish_at <= now()) \
                 AND ({a}.unpublish_at IS NULL OR {a}.unpublish_at > now()))",
                a = alias
            )),
            RowFilter::EditorialPublished => Cond::Sql(format!("{alias}.editorial_status = 'published'")),
            RowFilter::SelfUser(id) => Cond::Cmp(
                Col {
                    alias: alias.to_string(),
                    column: "id".into(),
                },
                CmpOp::Eq,
                SqlVal::Uuid(*id),
            ),
            RowFilter::MemberOf(tenants) => Cond::MemberOf {
                user_alias: alias.to_string(),
                alias: self.alias(),
                tenants: tenants.clone(),
            },
            RowFilter::StoreIn(ids) => {
                let column = if decl.slug == "stores" {
                    Some("id")
                } else if decl.has_field_column("store_id") {
                    Some("store_id")
                } else {
                    None
                };
                match column {
                    Some(c) if !ids.is_empty() => Cond::In(
                        Col {
                            alias: alias.to_string(),
                            column: c.to_string(),
                        },
                        ids.iter().map(|i| SqlVal::Uuid(*i)).collect(),
                    ),
                    _ => Cond::False,
                }
            }
            RowFilter::Not(inner) => Cond::Not(Box::new(self.row_filter(decl, alias, inner))),
            RowFilter::And(items) => {
                Cond::And(items.iter().map(|i| self.row_filter(decl, alias, i)).collect())
            }
            RowFilter::Or(items) => Cond::Or(items.iter().map(|i| self.row_filter(decl, alias, i)).collect()),
        }
    }
}

const KNOWN_OPS: &[&str] = &[
    "equals",
    "not_equals",
    "in",
    "not_in",
    "exists",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "like",
    "not_like",
    "contains",
    "near",
    "within",
    "intersects",
    "all",
];

enum Coerced {
    Val(SqlVal),
    Null,
    /// A value that can match no row (a malformed uuid).
    Never,
    Many(Vec<SqlVal>),
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list_raw(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        // Payload quirk: a string is always split on commas.
        Value::String(s) => s.split(',').map(|p| Value::String(p.to_string())).collect(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

fn list_values(v: &Value) -> Vec<String> {
    list_raw(v).iter().filter_map(scalar_text).collect()
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Coerces one `where` value to the field's type (contract §2.3).
fn coerce(path: &str, kind: Kind, v: &Value) -> Result<Coerced, ApiError> {
    if v.is_null() {
        return Ok(Coerced::Null);
    }
    if let Value::Array(items) = v {
        // An array under equals on a relationship is treated as `in`.
        let mut out = Vec::new();
        for item in items {
            if let Coerced::Val(x) = coerce(path, kind, item)? {
                out.push(x);
            }
        }
        return Ok(Coerced::Many(out));
    }
    let text = scalar_text(v).unwrap_or_default();
    Ok(match kind {
        Kind::Int | Kind::BigInt | Kind::Numeric => {
            if text.trim().is_empty() {
                Coerced::Val(SqlVal::Num(0.0))
            } else {
                match text.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => Coerced::Val(SqlVal::Num(n)),
                    _ => Coerced::Null,
                }
            }
        }
        Kind::Checkbox => match text.to_ascii_lowercase().as_str() {
            "true" => Coerced::Val(SqlVal::Bool(true)),
            "false" => Coerced::Val(SqlVal::Bool(false)),
            _ => {
                return Err(ApiError::QueryValue {
                    path: path.into(),
                    message: format!("The value of {path} must be true or false."),
                })
            }
        },
        Kind::Date => match parse_date(&text) {
            Some(t) => Coerced::Val(SqlVal::Ts(t)),
            None => {
                return Err(ApiError::QueryValue {
                    path: path.into(),
                    message: format!("\"{text}\" is not a valid date."),
                })
            }
        },
        Kind::Relation(_) | Kind::Upload(_) | Kind::IdRef => {
            if text == "null" {
                Coerced::Null
            } else {
                match Uuid::parse_str(text.trim()) {
                    Ok(u) => Coerced::Val(SqlVal::Uuid(u)),
                    Err(_) => Coerced::Never,
                }
            }
        }
        _ => Coerced::Val(SqlVal::Text(text)),
    })
}

/// Dates as JavaScript clients send them: RFC 3339, a bare date, or epoch milliseconds.
pub fn parse_date(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let t = text.trim();
    if let Ok(d) = OffsetDateTime::parse(t, &Rfc3339) {
        return Some(d);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i128 = t.parse().ok()?;
        return OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok();
    }
    // `2024-01-01` or `2024-01-01T10:00:00` (no zone: UTC).
    let fmt_date = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(t, &fmt_date) {
        return Some(d.midnight().assume_utc());
    }
    let fmt_dt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(d) = time::PrimitiveDateTime::parse(t, &fmt_dt) {
        return Some(d.assume_utc());
    }
    None
}

fn text_test(path: &str, op: &str, v: &Value) -> Result<TextTest, ApiError> {
    let s = || scalar_text(v).unwrap_or_default();
    Ok(match op {
        "equals" => TextTest::Eq(s()),
        "not_equals" => TextTest::Ne(s()),
        "in" => TextTest::In(list_values(v)),
        "like" | "contains" => TextTest::ILike(format!("%{}%", escape_like(&s()))),
        "exists" => TextTest::Exists(matches!(v, Value::Bool(true)) || v.as_str() == Some("true")),
        _ => {
            return Err(ApiError::QueryValue {
                path: path.into(),
                message: format!("The operator \"{op}\" cannot be used on path {path}."),
            })
        }
    })
}

/// Bracket-form GeoJSON arrives with string leaves; coordinates must be numbers.
fn numbers_from_strings(v: &Value) -> Value {
    match v {
        Value::String(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| v.clone()),
        Value::Array(a) => Value::Array(a.iter().map(numbers_from_strings).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), numbers_from_strings(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Renders a condition.
pub fn push_cond(qb: &mut QueryBuilder<'_, Postgres>, cond: &Cond) {
    match cond {
        Cond::True => {
            qb.push("TRUE");
        }
        Cond::False => {
            qb.push("FALSE");
        }
        Cond::And(items) | Cond::Or(items) => {
            if items.is_empty() {
                qb.push(if matches!(cond, Cond::And(_)) {
                    "TRUE"
                } else {
                    "FALSE"
                });
                return;
            }
            let sep = if matches!(cond, Cond::And(_)) {
                " AND "
            } else {
                " OR "
            };
            qb.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    qb.push(sep);
                }
                push_cond(qb, item);
            }
            qb.push(")");
        }
        Cond::Not(inner) => {
            qb.push("NOT COALESCE(");
            push_cond(qb, inner);
            qb.push(", FALSE)");
        }
        Cond::Cmp(col, op, val) => {
            qb.push(col.sql()).push(op.sql());
            push_val(qb, val);
        }
        Cond::IsNull(col) => {
            qb.push(col.sql()).push(" IS NULL");
        }
        Cond::NotNull(col) => {
            qb.push(col.sql()).push(" IS NOT NULL");
        }
        Cond::In(col, vals) => {
            if vals.is_empty() {
                qb.push("FALSE");
                return;
            }
            // A single value as `=`, so the planner can also use index order.
            if let [only] = vals.as_slice() {
                qb.push(col.sql()).push(" = ");
                push_val(qb, only);
                return;
            }
            qb.push(col.sql()).push(" = ANY(");
            push_list(qb, vals);
            qb.push(")");
        }
        Cond::ILike(col, pattern) => {
            qb.push(col.sql()).push(" ILIKE ").push_bind(pattern.clone());
        }
        Cond::ArrayHas(col, val) => {
            push_val(qb, val);
            qb.push(" = ANY(").push(col.sql()).push(")");
        }
        Cond::ArrayOverlaps(col, vals) => {
            qb.push(col.sql())
                .push(" && ")
                .push_bind(vals.clone())
                .push("::text[]");
        }
        Cond::ArrayEmpty(col) => {
            qb.push("cardinality(").push(col.sql()).push(") = 0");
        }
        Cond::JsonText(col, keys, test) => {
            let expr = format!("({} #>> ", col.sql());
            push_text_test(
                qb,
                |qb| {
                    qb.push(&expr).push_bind(keys.clone()).push("::text[])");
                },
                test,
            );
        }
        Cond::JsonElem(col, key, test) => {
            qb.push("EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(")
                .push(col.sql())
                .push(", '[]'::jsonb)) AS e(v) WHERE jsonb_typeof(e.v) = 'object' AND ");
            let key = key.clone();
            push_text_test(
                qb,
                |qb| {
                    qb.push("(e.v ->> ").push_bind(key.clone()).push(")");
                },
                test,
            );
            qb.push(")");
        }
        Cond::Near {
            col,
            lng,
            lat,
            max,
            min,
        } => {
            let point = |qb: &mut QueryBuilder<'_, Postgres>| {
                qb.push("ST_SetSRID(ST_MakePoint(")
                    .push_bind(*lng)
                    .push(", ")
                    .push_bind(*lat)
                    .push("), 4326)::geography");
            };
            qb.push("(").push(col.sql()).push(" IS NOT NULL");
            if let Some(max) = max {
                qb.push(" AND ST_DWithin(").push(col.sql()).push(", ");
                point(qb);
                qb.push(", ").push_bind(*max).push(")");
            }
            if let Some(min) = min {
                qb.push(" AND NOT ST_DWithin(").push(col.sql()).push(", ");
                point(qb);
                qb.push(", ").push_bind(*min).push(")");
            }
            qb.push(")");
        }
        Cond::Geo { col, func, geojson } => {
            qb.push(*func)
                .push("(")
                .push(col.sql())
                .push("::geometry, ST_SetSRID(ST_GeomFromGeoJSON(")
                .push_bind(geojson.clone())
                .push("), 4326))");
        }
        Cond::Sub {
            fk,
            table,
            alias,
            cond,
        } => {
            qb.push(fk.sql())
                .push(" IN (SELECT ")
                .push(alias.as_str())
                .push(".id FROM ")
                .push(*table)
                .push(" ")
                .push(alias.as_str())
                .push(" WHERE ");
            push_cond(qb, cond);
            qb.push(")");
        }
        Cond::Child {
            owner,
            child,
            alias,
            cond,
        } => {
            qb.push("EXISTS (SELECT 1 FROM ")
                .push(child.table)
                .push(" ")
                .push(alias.as_str())
                .push(" WHERE ")
                .push(format!("{alias}.{} = {}", child.owner_column, owner.sql()));
            for (c, v) in child.fixed {
                qb.push(format!(" AND {alias}.{c} = ")).push_bind(v.to_string());
            }
            if child.store_null {
                qb.push(format!(" AND {alias}.store_id IS NULL"));
            }
            if let Some(extra) = child.condition {
                qb.push(format!(" AND {}", extra.replace("{c}", alias)));
            }
            qb.push(" AND ");
            push_cond(qb, cond);
            qb.push(")");
        }
        Cond::MemberOf {
            user_alias,
            alias,
            tenants,
        } => {
            qb.push(format!(
                "EXISTS (SELECT 1 FROM user_tenant_memberships {alias} WHERE {alias}.user_id = {user_alias}.id \
                 AND {alias}.status = 'active' AND {alias}.tenant_id = ANY("
            ))
            .push_bind(tenants.clone())
            .push("))");
        }
        Cond::Sql(s) => {
            qb.push(s.as_str());
        }
    }
}

fn push_text_test(
    qb: &mut QueryBuilder<'_, Postgres>,
    expr: impl Fn(&mut QueryBuilder<'_, Postgres>),
    test: &TextTest,
) {
    match test {
        TextTest::Eq(s) => {
            expr(qb);
            qb.push(" = ").push_bind(s.clone());
        }
        TextTest::Ne(s) => {
            qb.push("(");
            expr(qb);
            qb.push(" IS DISTINCT FROM ").push_bind(s.clone()).push(")");
        }
        TextTest::In(items) => {
            expr(qb);
            qb.push(" = ANY(").push_bind(items.clone()).push("::text[])");
        }
        TextTest::ILike(p) => {
            expr(qb);
            qb.push(" ILIKE ").push_bind(p.clone());
        }
        TextTest::Exists(want) => {
            expr(qb);
            qb.push(if *want { " IS NOT NULL" } else { " IS NULL" });
        }
    }
}

fn push_val(qb: &mut QueryBuilder<'_, Postgres>, v: &SqlVal) {
    match v {
        SqlVal::Text(s) => {
            qb.push_bind(s.clone());
        }
        SqlVal::Num(n) => {
            qb.push_bind(*n);
        }
        SqlVal::Bool(b) => {
            qb.push_bind(*b);
        }
        SqlVal::Uuid(u) => {
            qb.push_bind(*u);
        }
        SqlVal::Ts(t) => {
            qb.push_bind(*t);
        }
    }
}

/// A homogeneous array parameter (`= ANY($1)`).
fn push_list(qb: &mut QueryBuilder<'_, Postgres>, vals: &[SqlVal]) {
    match vals.first() {
        Some(SqlVal::Uuid(_)) => {
            qb.push_bind(
                vals.iter()
                    .filter_map(|v| if let SqlVal::Uuid(u) = v { Some(*u) } else { None })
                    .collect::<Vec<_>>(),
            );
        }
        Some(SqlVal::Num(_)) => {
            qb.push_bind(
                vals.iter()
                    .filter_map(|v| if let SqlVal::Num(n) = v { Some(*n) } else { None })
                    .collect::<Vec<_>>(),
            );
        }
        Some(SqlVal::Bool(_)) => {
            qb.push_bind(
                vals.iter()
                    .filter_map(|v| if let SqlVal::Bool(n) = v { Some(*n) } else { None })
                    .collect::<Vec<_>>(),
            );
        }
        Some(SqlVal::Ts(_)) => {
            qb.push_bind(
                vals.iter()
                    .filter_map(|v| if let SqlVal::Ts(n) = v { Some(*n) } else { None })
                    .collect::<Vec<_>>(),
            );
        }
        _ => {
            qb.push_bind(
                vals.iter()
                    .filter_map(|v| {
                        if let SqlVal::Text(n) = v {
                            Some(n.clone())
                        } else {
                            None
                        }
                    })
                    .collect::<Vec<_>>(),
            );
        }
    }
}
