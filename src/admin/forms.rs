//! Declaration → form fields, and form body → the JSON object the engine's write functions
//! take. Input names are the same dotted paths the engine's `ValidationError` reports
//! (`title`, `seo.title`, `layout.1.heading`, `subdomains.0.isPrimary`), so an error lands
//! next to its input without any mapping.
//!
//! Arrays (rows, blocks, child tables) carry a `<path>.<i>._row` marker per row, in document
//! order; add/remove/reorder are submit buttons (`_op`) that re-render the form with the
//! changed rows, so they work without JavaScript.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::collections::decl::{
    Block, ChildKind, CollectionDecl, Default, Field, Kind, SubField, SubKind, Visibility,
};
use crate::http::error::FieldError;

use super::html::esc;
use super::i18n::Lang;

/// What the file inputs offer to pick (the server decides by the bytes anyway).
const ACCEPT: &str = "image/*,video/*,application/pdf";

/// Pickers with at least this many options get a search box.
pub const PICKER_SEARCH_MIN: usize = 10;

/// A posted `application/x-www-form-urlencoded` body.
pub struct FormInput {
    pairs: Vec<(String, String)>,
}

impl FormInput {
    pub fn parse(body: &[u8]) -> FormInput {
        FormInput {
            pairs: form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .take(5_000)
                .collect(),
        }
    }
    /// Pairs read from a multipart body (kept to the same 5,000 as an urlencoded one).
    pub fn from_pairs(mut pairs: Vec<(String, String)>) -> FormInput {
        pairs.truncate(5_000);
        FormInput { pairs }
    }
    /// Adds a value; it wins over earlier ones (`get` reads the last).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((key.into(), value.into()));
    }
    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// Every posted pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }
    /// Row indices of an array at `path`, in the order the rows appear in the form.
    fn rows(&self, path: &str) -> Vec<String> {
        let prefix = format!("{path}.");
        self.pairs
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix)?.strip_suffix("._row"))
            .filter(|i| !i.contains('.'))
            .map(str::to_string)
            .collect()
    }
}

/// An array edit asked for by a submit button instead of saving.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOp {
    Add { field: String, block: Option<String> },
    Remove { field: String, index: usize },
    Up { field: String, index: usize },
    Down { field: String, index: usize },
}

impl RowOp {
    pub fn from_form(input: &FormInput) -> Option<RowOp> {
        let op = input.get("_op")?;
        let mut parts = op.splitn(3, ':');
        let verb = parts.next()?;
        let field = parts.next()?.to_string();
        let arg = parts.next();
        let index = || arg.and_then(|a| a.parse::<usize>().ok());
        Some(match verb {
            "add" => RowOp::Add {
                block: input.get(&format!("_block.{field}")).map(str::to_string),
                field,
            },
            "remove" => RowOp::Remove {
                field,
                index: index()?,
            },
            "up" => RowOp::Up {
                field,
                index: index()?,
            },
            "down" => RowOp::Down {
                field,
                index: index()?,
            },
            _ => return None,
        })
    }

    /// Applies the edit to the body: a top-level array (`layout`), or rows inside a row
    /// (`layout.1.images`).
    pub fn apply(&self, decl: &CollectionDecl, body: &mut Map<String, Value>) {
        let path = match self {
            RowOp::Add { field, .. }
            | RowOp::Remove { field, .. }
            | RowOp::Up { field, .. }
            | RowOp::Down { field, .. } => field.as_str(),
        };
        let (rows, new_row) = match path.split_once('.') {
            None => {
                let Some(field) = decl.field(path) else { return };
                let entry = body.entry(path.to_string()).or_insert_with(|| json!([]));
                if !entry.is_array() {
                    *entry = json!([]);
                }
                let mut row = Map::new();
                if let (Kind::Blocks(blocks), RowOp::Add { block, .. }) = (field.kind, self) {
                    let slug = block
                        .as_deref()
                        .filter(|b| blocks.iter().any(|x| x.slug == *b))
                        .or_else(|| blocks.first().map(|b| b.slug));
                    if let Some(slug) = slug {
                        row.insert("blockType".into(), json!(slug));
                    }
                }
                (entry.as_array_mut(), row)
            }
            Some((head, rest)) => (nested_rows(body.get_mut(head), rest), Map::new()),
        };
        let Some(rows) = rows else { return };
        match self {
            RowOp::Add { .. } => rows.push(Value::Object(new_row)),
            RowOp::Remove { index, .. } if *index < rows.len() => {
                rows.remove(*index);
            }
            RowOp::Up { index, .. } if *index > 0 && *index < rows.len() => rows.swap(index - 1, *index),
            RowOp::Down { index, .. } if index + 1 < rows.len() => rows.swap(*index, index + 1),
            _ => {}
        }
    }
}

/// The rows at `rest` below `v` (`1.images`: row 1's `images`), created empty when that row
/// has none yet. Anything else on the way (no such row, not a row) is `None`: the edit is
/// ignored, and nothing is saved by an edit anyway.
fn nested_rows<'v>(v: Option<&'v mut Value>, rest: &str) -> Option<&'v mut Vec<Value>> {
    let (row, rest) = rest.split_once('.')?;
    let row = v?
        .as_array_mut()?
        .get_mut(row.parse::<usize>().ok()?)?
        .as_object_mut()?;
    match rest.split_once('.') {
        None => {
            let entry = row.entry(rest.to_string()).or_insert_with(|| json!([]));
            if entry.is_null() {
                *entry = json!([]);
            }
            entry.as_array_mut()
        }
        Some((name, deeper)) => nested_rows(row.get_mut(name), deeper),
    }
}

/// What a form post produced: the body for the engine, errors found before it (bad JSON,
/// non-numeric coordinates), and the raw text of inputs that did not parse (shown again).
pub struct Parsed {
    pub body: Map<String, Value>,
    pub errors: Vec<FieldError>,
    pub raw: HashMap<String, String>,
}

/// Whether a field appears on the form at all (hidden columns never do).
pub fn on_form(field: &Field) -> bool {
    !matches!(field.visibility, Visibility::Hidden)
}

/// Whether the form sends a value for the field.
fn editable(field: &Field) -> bool {
    field.writable() && !matches!(field.kind, Kind::Vector)
}

/// Form body → the engine's JSON (nested for dotted group fields). On create, empty inputs are
/// left out (so defaults apply); on update they clear the field.
pub fn body_from_form(decl: &CollectionDecl, input: &FormInput, creating: bool) -> Parsed {
    let mut out = Parsed {
        body: Map::new(),
        errors: Vec::new(),
        raw: HashMap::new(),
    };
    for field in decl.fields.iter().filter(|f| on_form(f) && editable(f)) {
        if let Some(v) = field_value(field, input, creating, &mut out) {
            set_path(&mut out.body, field.name, v);
        }
    }
    out
}

fn empty(creating: bool) -> Option<Value> {
    (!creating).then_some(Value::Null)
}

fn field_value(field: &Field, input: &FormInput, creating: bool, out: &mut Parsed) -> Option<Value> {
    let key = field.name;
    match field.kind {
        Kind::Text
        | Kind::Textarea
        | Kind::Email
        | Kind::Select(_)
        | Kind::Relation(_)
        | Kind::Upload(_)
        | Kind::IdRef => {
            let s = input.get(key)?;
            if s.trim().is_empty() {
                empty(creating)
            } else {
                Some(json!(s))
            }
        }
        Kind::Date => {
            let s = input.get(key)?;
            if s.trim().is_empty() {
                empty(creating)
            } else {
                Some(json!(date_from_input(s)))
            }
        }
        Kind::Int | Kind::BigInt | Kind::Numeric => {
            let s = input.get(key)?.trim();
            if s.is_empty() {
                return empty(creating);
            }
            Some(match s.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => match s.parse::<f64>() {
                    Ok(n) if n.is_finite() => json!(n),
                    // The engine refuses it with its own message.
                    _ => json!(s),
                },
            })
        }
        Kind::Checkbox => {
            if !input.all("_present").contains(&key) && !input.has(key) {
                return None;
            }
            Some(json!(input.has(key)))
        }
        Kind::Json => {
            let s = input.get(key)?;
            if s.trim().is_empty() {
                return empty(creating);
            }
            match serde_json::from_str::<Value>(s) {
                Ok(v) => Some(v),
                Err(_) => {
                    out.raw.insert(key.into(), s.into());
                    out.errors
                        .push(FieldError::new(key, Some(field.label), "This is not valid JSON."));
                    None
                }
            }
        }
        Kind::RichText => {
            let s = input.get(key)?;
            if s.trim().is_empty() {
                empty(creating)
            } else {
                Some(rich_from_text(s))
            }
        }
        Kind::Point => {
            let (lng, lat) = (
                input.get(&format!("{key}.lng"))?,
                input.get(&format!("{key}.lat"))?,
            );
            if lng.trim().is_empty() && lat.trim().is_empty() {
                return empty(creating);
            }
            match (lng.trim().parse::<f64>(), lat.trim().parse::<f64>()) {
                (Ok(a), Ok(b)) => Some(json!([a, b])),
                _ => {
                    out.raw.insert(format!("{key}.lng"), lng.into());
                    out.raw.insert(format!("{key}.lat"), lat.into());
                    out.errors.push(FieldError::new(
                        key,
                        Some(field.label),
                        "Longitude and latitude must be numbers.",
                    ));
                    None
                }
            }
        }
        Kind::Vector => None,
        Kind::List { sub, options } => {
            if options.is_some() {
                if !input.all("_present").contains(&key) {
                    return None;
                }
                Some(Value::Array(
                    input.all(key).into_iter().map(|v| json!({ sub: v })).collect(),
                ))
            } else {
                let s = input.get(key)?;
                Some(Value::Array(
                    s.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| json!({ sub: l }))
                        .collect(),
                ))
            }
        }
        Kind::Rows(subs) => {
            if !input.all("_present").contains(&key) {
                return None;
            }
            let rows = input
                .rows(key)
                .into_iter()
                .map(|i| sub_row(subs, &format!("{key}.{i}"), input))
                .collect();
            Some(Value::Array(rows))
        }
        Kind::Blocks(blocks) => {
            if !input.all("_present").contains(&key) {
                return None;
            }
            let rows = input
                .rows(key)
                .into_iter()
                .filter_map(|i| {
                    let p = format!("{key}.{i}");
                    let slug = input.get(&format!("{p}.blockType"))?;
                    let block = blocks.iter().find(|b| b.slug == slug)?;
                    let mut row = sub_row(block.fields, &p, input);
                    row["blockType"] = json!(slug);
                    Some(row)
                })
                .collect();
            Some(Value::Array(rows))
        }
        Kind::Child(child) => {
            if !input.all("_present").contains(&key) {
                return None;
            }
            let rows = input
                .rows(key)
                .into_iter()
                .map(|i| {
                    let p = format!("{key}.{i}");
                    let mut row = Map::new();
                    if let Some(id) = input.get(&format!("{p}.id")).filter(|s| !s.is_empty()) {
                        row.insert("id".into(), json!(id));
                    }
                    for (wire, _, kind) in child.columns {
                        let k = format!("{p}.{wire}");
                        let v = match kind {
                            ChildKind::Bool => json!(input.has(&k)),
                            ChildKind::List(_) => json!(input.all(&k)),
                            ChildKind::Date => match input.get(&k).filter(|s| !s.trim().is_empty()) {
                                Some(s) => json!(date_from_input(s)),
                                None => continue,
                            },
                            _ => match input.get(&k).filter(|s| !s.trim().is_empty()) {
                                Some(s) => json!(s),
                                None => continue,
                            },
                        };
                        row.insert((*wire).into(), v);
                    }
                    Value::Object(row)
                })
                .collect();
            Some(Value::Array(rows))
        }
        Kind::Secret | Kind::Password => {
            let s = input.get(key)?;
            (!s.is_empty()).then(|| json!(s))
        }
    }
}

fn sub_row(subs: &[SubField], prefix: &str, input: &FormInput) -> Value {
    let mut row = Map::new();
    if let Some(id) = input.get(&format!("{prefix}.id")).filter(|s| !s.is_empty()) {
        row.insert("id".into(), json!(id));
    }
    for sub in subs {
        let k = format!("{prefix}.{}", sub.name);
        let v = match sub.kind {
            SubKind::Rows(inner) => {
                if !input.all("_present").contains(&k.as_str()) {
                    continue;
                }
                let rows = input.rows(&k).into_iter();
                Value::Array(rows.map(|j| sub_row(inner, &format!("{k}.{j}"), input)).collect())
            }
            kind => {
                let Some(s) = input.get(&k).filter(|s| !s.trim().is_empty()) else {
                    continue;
                };
                match kind {
                    SubKind::RichText => rich_from_text(s),
                    _ => json!(s),
                }
            }
        };
        row.insert(sub.name.into(), v);
    }
    Value::Object(row)
}

/// `2026-05-01T10:30` (a `datetime-local` input, taken as UTC) → ISO 8601; other text is
/// passed through for the engine to judge.
fn date_from_input(s: &str) -> String {
    let s = s.trim();
    match s.len() {
        16 => format!("{s}:00.000Z"),
        10 => format!("{s}T00:00:00.000Z"),
        _ => s.to_string(),
    }
}

fn date_for_input(v: &Value) -> String {
    v.as_str()
        .map(|s| s.chars().take(16).collect())
        .unwrap_or_default()
}

/// Plain paragraphs → the rich-text JSON the REST API stores (Lexical's document shape).
pub fn rich_from_text(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            json!({"type": "paragraph", "version": 1, "format": "", "indent": 0, "direction": null,
                "children": [{"type": "text", "version": 1, "text": p, "format": 0, "detail": 0, "mode": "normal", "style": ""}]})
        })
        .collect();
    json!({"root": {"type": "root", "version": 1, "format": "", "indent": 0, "direction": null, "children": paragraphs}})
}

/// Rich-text JSON → its text, paragraphs separated by blank lines (what the editor shows).
pub fn rich_to_text(v: &Value) -> String {
    fn text_of(node: &Value, out: &mut String) {
        if let Some(t) = node.get("text").and_then(Value::as_str) {
            out.push_str(t);
        }
        if let Some(children) = node.get("children").and_then(Value::as_array) {
            for c in children {
                text_of(c, out);
            }
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        _ => {
            let blocks = v
                .pointer("/root/children")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            blocks
                .iter()
                .map(|b| {
                    let mut s = String::new();
                    text_of(b, &mut s);
                    s
                })
                .collect::<Vec<_>>()
                .join("\n\n")
        }
    }
}

fn set_path(map: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.into(), v);
        }
        Some((head, rest)) => {
            let entry = map.entry(head.to_string()).or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            if let Some(m) = entry.as_object_mut() {
                set_path(m, rest, v);
            }
        }
    }
}

fn get_path<'v>(v: &'v Value, path: &str) -> &'v Value {
    path.split('.').fold(v, |cur, seg| match cur {
        Value::Object(m) => m.get(seg).unwrap_or(&Value::Null),
        Value::Array(a) => seg
            .parse::<usize>()
            .ok()
            .and_then(|i| a.get(i))
            .unwrap_or(&Value::Null),
        _ => &Value::Null,
    })
}

/// The values a new document's form starts with: the declaration's literal defaults.
pub fn defaults(decl: &CollectionDecl) -> Value {
    let mut m = Map::new();
    for f in decl.fields {
        let v = match f.default {
            Some(Default::Str(s)) => json!(s),
            Some(Default::Int(n)) => json!(n),
            Some(Default::Bool(b)) => json!(b),
            _ => continue,
        };
        set_path(&mut m, f.name, v);
    }
    Value::Object(m)
}

/// Whether the declaration has upload fields (top level, or inside rows or blocks).
pub fn has_upload_fields(decl: &CollectionDecl) -> bool {
    fn sub(subs: &[SubField]) -> bool {
        subs.iter().any(|s| match s.kind {
            SubKind::Upload(_) => true,
            SubKind::Rows(inner) => sub(inner),
            _ => false,
        })
    }
    decl.fields.iter().filter(|f| editable(f)).any(|f| match f.kind {
        Kind::Upload(_) => true,
        Kind::Rows(subs) => sub(subs),
        Kind::Blocks(blocks) => blocks.iter().any(|b| sub(b.fields)),
        _ => false,
    })
}

/// The collection an upload input at `path` points into (`hero`, `gallery.0.image`,
/// `layout.2.image` with that row's posted `blockType`), if `path` is one.
pub fn upload_target(decl: &CollectionDecl, input: &FormInput, path: &str) -> Option<&'static str> {
    if let Some(f) = decl.field(path).filter(|f| editable(f)) {
        return match f.kind {
            Kind::Upload(t) => Some(t),
            _ => None,
        };
    }
    let f = decl
        .fields
        .iter()
        .filter(|f| editable(f))
        .find(|f| path.starts_with(&format!("{}.", f.name)))?;
    let rest = &path[f.name.len() + 1..];
    let (row, sub) = rest.split_once('.')?;
    row.parse::<usize>().ok()?;
    let subs = match f.kind {
        Kind::Rows(subs) => subs,
        Kind::Blocks(blocks) => {
            let slug = input.get(&format!("{}.{row}.blockType", f.name))?;
            blocks.iter().find(|b| b.slug == slug)?.fields
        }
        _ => return None,
    };
    upload_in(subs, sub)
}

/// The upload target of `rest` (`image`, or `images.0.image` through rows inside the row).
fn upload_in(subs: &'static [SubField], rest: &str) -> Option<&'static str> {
    let (name, deeper) = match rest.split_once('.') {
        Some((name, deeper)) => (name, Some(deeper)),
        None => (rest, None),
    };
    match (subs.iter().find(|s| s.name == name)?.kind, deeper) {
        (SubKind::Upload(t), None) => Some(t),
        (SubKind::Rows(inner), Some(deeper)) => {
            let (row, rest) = deeper.split_once('.')?;
            row.parse::<usize>().ok()?;
            upload_in(inner, rest)
        }
        _ => None,
    }
}

/// Everything a form needs to render.
pub struct FormView<'a> {
    pub decl: &'static CollectionDecl,
    pub values: &'a Value,
    pub errors: &'a HashMap<String, String>,
    pub raw: &'a HashMap<String, String>,
    /// Relationship options by target collection: (id, label).
    pub options: &'a HashMap<&'static str, Vec<(String, String)>>,
    pub lang: Lang,
    /// Whether the caller may save this form.
    pub can_save: bool,
    /// Whether the caller may create documents in upload collections (the "upload a new
    /// file" inputs beside upload pickers).
    pub can_upload: bool,
    /// An existing document (its file can be replaced) rather than a new one.
    pub editing: bool,
    /// `MEDIA_MAX_BYTES`, for the hint.
    pub max_upload_bytes: u64,
}

/// A field's label: a `<label>` for one input, a labelling `<span>` (`{id}-label`) for a group.
fn label_tag(id: &str, label: &str, required: bool, group: bool) -> String {
    let req = if required {
        " <span class=\"req\" aria-hidden=\"true\">*</span>"
    } else {
        ""
    };
    if group {
        format!(
            "<span class=\"label\" id=\"{id}-label\">{}{req}</span>",
            esc(label)
        )
    } else {
        format!("<label for=\"{id}\">{}{req}</label>", esc(label))
    }
}

fn dom_id(path: &str) -> String {
    format!("f-{}", path.replace('.', "-"))
}

impl FormView<'_> {
    /// The form's fields as HTML, Arabic twins beside their English field.
    pub fn render(&self) -> String {
        let mut html = String::with_capacity(8_192);
        if crate::media::is_upload(self.decl) {
            self.file_input(&mut html);
        }
        let fields: Vec<&Field> = self.decl.fields.iter().filter(|f| on_form(f)).collect();
        let mut done = std::collections::HashSet::new();
        for f in &fields {
            if done.contains(f.name) {
                continue;
            }
            let twin = format!("{}Ar", f.name);
            if let Some(ar) = fields.iter().find(|g| g.name == twin) {
                html.push_str("<div class=\"twins\">");
                self.field(&mut html, f);
                self.field(&mut html, ar);
                html.push_str("</div>");
                done.insert(ar.name);
            } else {
                self.field(&mut html, f);
            }
            done.insert(f.name);
        }
        html
    }

    fn error(&self, path: &str) -> Option<&String> {
        self.errors.get(path)
    }

    fn open(&self, html: &mut String, f: &Field, id: &str, group: bool) {
        let err = self.error(f.name).is_some();
        html.push_str(&format!(
            "<div class=\"field{}\" data-field=\"{}\">{}",
            if err { " invalid" } else { "" },
            esc(f.name),
            label_tag(
                id,
                super::labels::label(self.lang, f.label),
                f.required && f.writable(),
                group
            )
        ));
    }

    fn close(&self, html: &mut String, path: &str, id: &str) {
        if let Some(e) = self.error(path) {
            html.push_str(&format!(
                "<p class=\"error\" id=\"{id}-error\" role=\"alert\">{}</p>",
                esc(e)
            ));
        }
        html.push_str("</div>");
    }

    fn attrs(&self, f: &Field, path: &str, id: &str) -> String {
        let mut a = format!(" id=\"{id}\"");
        if self.error(path).is_some() {
            a.push_str(&format!(" aria-invalid=\"true\" aria-describedby=\"{id}-error\""));
        }
        if f.required && f.writable() {
            a.push_str(" aria-required=\"true\"");
        }
        if f.name.ends_with("Ar") {
            a.push_str(" dir=\"rtl\" lang=\"ar\"");
        }
        a
    }

    fn field(&self, html: &mut String, f: &Field) {
        let path = f.name;
        let id = dom_id(path);
        let value = self
            .raw
            .get(path)
            .map(|s| Value::String(s.clone()))
            .unwrap_or_else(|| get_path(self.values, path).clone());
        let group = matches!(
            f.kind,
            Kind::Rows(_) | Kind::Blocks(_) | Kind::Child(_) | Kind::Point
        ) || matches!(f.kind, Kind::List { options: Some(_), .. });
        self.open(html, f, &id, group && editable(f));
        if !editable(f) {
            if let Some(table) = self.diff_table(&id, &value) {
                html.push_str(&table);
                self.close(html, path, &id);
                return;
            }
            let shown = display_value(f, &value);
            if shown.contains('\n') || shown.len() > 80 {
                html.push_str(&format!(
                    "<textarea id=\"{id}\" disabled rows=\"4\">{}</textarea>",
                    esc(&shown)
                ));
            } else {
                html.push_str(&format!("<input id=\"{id}\" disabled value=\"{}\">", esc(&shown)));
            }
            self.close(html, path, &id);
            return;
        }
        let a = self.attrs(f, path, &id);
        let name = esc(path);
        let sv = value_text(&value);
        match f.kind {
            Kind::Text | Kind::IdRef => {
                let max = f.max_len.filter(|m| *m <= 10_000).map(|m| format!(" maxlength=\"{m}\"")).unwrap_or_default();
                html.push_str(&format!("<input type=\"text\" name=\"{name}\"{a}{max} value=\"{}\">", esc(&sv)));
            }
            Kind::Email => html.push_str(&format!(
                "<input type=\"email\" name=\"{name}\"{a} value=\"{}\" autocomplete=\"off\">",
                esc(&sv)
            )),
            Kind::Textarea => html.push_str(&format!(
                "<textarea name=\"{name}\"{a} rows=\"3\">{}</textarea>",
                esc(&sv)
            )),
            Kind::Int | Kind::BigInt | Kind::Numeric => {
                let step = if matches!(f.kind, Kind::Numeric) { "any" } else { "1" };
                // Text input with a numeric keyboard: a typed non-number comes back as typed.
                html.push_str(&format!(
                    "<input type=\"text\" inputmode=\"decimal\" data-step=\"{step}\" name=\"{name}\"{a} value=\"{}\">",
                    esc(&sv)
                ));
            }
            Kind::Checkbox => {
                html.push_str(&format!(
                    "<input type=\"hidden\" name=\"_present\" value=\"{name}\"><input type=\"checkbox\" name=\"{name}\" value=\"true\"{a}{}>",
                    if value.as_bool() == Some(true) { " checked" } else { "" }
                ));
            }
            Kind::Select(options) => {
                html.push_str(&format!("<select name=\"{name}\"{a}>"));
                html.push_str(&option_list(options.iter().map(|o| (o.to_string(), o.to_string())), &sv, true));
                html.push_str("</select>");
            }
            Kind::Date => html.push_str(&format!(
                "<input type=\"datetime-local\" name=\"{name}\"{a} value=\"{}\">",
                esc(&date_for_input(&value))
            )),
            Kind::Relation(target) | Kind::Upload(target) => {
                let current = value
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| value.get("id").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                html.push_str(&self.picker(target, &name, &a, &current));
                if matches!(f.kind, Kind::Upload(_)) {
                    self.upload_new(html, path);
                }
            }
            Kind::Json => {
                let text = match &value {
                    Value::Null => String::new(),
                    Value::String(s) if self.raw.contains_key(path) => s.clone(),
                    v => serde_json::to_string_pretty(v).unwrap_or_default(),
                };
                html.push_str(&format!(
                    "<textarea class=\"code\" name=\"{name}\"{a} rows=\"4\" spellcheck=\"false\">{}</textarea>",
                    esc(&text)
                ));
            }
            Kind::RichText => {
                html.push_str(&format!(
                    "<textarea class=\"rich\" name=\"{name}\"{a} rows=\"6\">{}</textarea><small class=\"hint\">{}</small>",
                    esc(&rich_to_text(&value)),
                    self.lang.t("rich_hint")
                ));
            }
            Kind::Point => {
                let (lng, lat) = match value.as_array() {
                    Some(p) if p.len() == 2 => (value_text(&p[0]), value_text(&p[1])),
                    _ => (String::new(), String::new()),
                };
                let lng = self.raw.get(&format!("{path}.lng")).cloned().unwrap_or(lng);
                let lat = self.raw.get(&format!("{path}.lat")).cloned().unwrap_or(lat);
                html.push_str(&format!(
                    "<div class=\"point\" role=\"group\" aria-labelledby=\"{id}-label\">\
                     <label for=\"{id}\">{lng_l}</label><input id=\"{id}\" type=\"text\" inputmode=\"decimal\" name=\"{name}.lng\" value=\"{}\">\
                     <label for=\"{id}-lat\">{lat_l}</label><input id=\"{id}-lat\" type=\"text\" inputmode=\"decimal\" name=\"{name}.lat\" value=\"{}\"></div>",
                    esc(&lng),
                    esc(&lat),
                    lng_l = self.lang.t("longitude"),
                    lat_l = self.lang.t("latitude"),
                ));
            }
            Kind::Vector => {}
            Kind::List { sub, options } => {
                let items: Vec<String> = value
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|i| i.get(sub).or(Some(i)).and_then(Value::as_str).map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                match options {
                    Some(opts) => {
                        html.push_str(&format!(
                            "<div class=\"choices\" role=\"group\" aria-labelledby=\"{id}-label\"><input type=\"hidden\" name=\"_present\" value=\"{name}\">"
                        ));
                        for (i, o) in opts.iter().enumerate() {
                            html.push_str(&format!(
                                "<label><input type=\"checkbox\" name=\"{name}\" value=\"{o}\"{}{}> {o}</label>",
                                if i == 0 { format!(" id=\"{id}\"") } else { String::new() },
                                if items.iter().any(|x| x == o) { " checked" } else { "" }
                            ));
                        }
                        html.push_str("</div>");
                    }
                    None => html.push_str(&format!(
                        "<textarea name=\"{name}\"{a} rows=\"3\">{}</textarea><small class=\"hint\">{}</small>",
                        esc(&items.join("\n")),
                        self.lang.t("one_per_line")
                    )),
                }
            }
            Kind::Rows(subs) => self.array(html, f.name, &id, &value, None, Some(subs), None),
            Kind::Blocks(blocks) => self.array(html, f.name, &id, &value, Some(blocks), None, None),
            Kind::Child(child) => self.array(html, f.name, &id, &value, None, None, Some(child.columns)),
            Kind::Secret => {
                let has = get_path(self.values, &crate::collections::engine::read::has_name(path))
                    .as_bool()
                    .unwrap_or(false);
                if has {
                    html.push_str(&format!(
                        "<input type=\"hidden\" name=\"_has\" value=\"{}\">",
                        esc(&crate::collections::engine::read::has_name(path))
                    ));
                }
                html.push_str(&format!(
                    "<input type=\"password\" name=\"{name}\"{a} value=\"\" autocomplete=\"new-password\"><small class=\"hint\">{}</small>",
                    self.lang.t(if has { "secret_set" } else { "secret_unset" })
                ));
            }
            Kind::Password => html.push_str(&format!(
                "<input type=\"password\" name=\"{name}\"{a} value=\"\" autocomplete=\"new-password\"><small class=\"hint\">{}</small>",
                self.lang.t("password_hint")
            )),
        }
        self.close(html, path, &id);
    }

    /// The upload collection's own file input (`file`, as the REST multipart body names it):
    /// required on create, "replace" on edit, with a link to the current file.
    fn file_input(&self, html: &mut String) {
        let err = self.error("file");
        html.push_str(&format!(
            "<div class=\"field{}\" data-field=\"file\">",
            if err.is_some() { " invalid" } else { "" }
        ));
        if self.editing {
            html.push_str(&format!(
                "<label for=\"f-file\">{}</label>",
                self.lang.t("replace_file")
            ));
            let url = self.values.get("url").and_then(Value::as_str).unwrap_or("");
            let name = self.values.get("filename").and_then(Value::as_str).unwrap_or("");
            if !url.is_empty() && !name.is_empty() {
                html.push_str(&format!(
                    "<p class=\"hint\">{}: <a id=\"current-file\" href=\"{}\">{}</a></p>",
                    self.lang.t("current_file"),
                    esc(url),
                    esc(name)
                ));
            }
        } else {
            html.push_str(&format!(
                "<label for=\"f-file\">{} <span class=\"req\" aria-hidden=\"true\">*</span></label>",
                self.lang.t("file")
            ));
        }
        let mut a = String::from(" id=\"f-file\" aria-describedby=\"f-file-hint\"");
        if !self.editing {
            a.push_str(" aria-required=\"true\"");
        }
        if err.is_some() {
            a = String::from(
                " id=\"f-file\" aria-invalid=\"true\" aria-describedby=\"f-file-error f-file-hint\"",
            );
        }
        if self.can_save {
            html.push_str(&format!(
                "<input type=\"file\" name=\"file\"{a} accept=\"{ACCEPT}\">"
            ));
        }
        html.push_str(&format!(
            "<small class=\"hint\" id=\"f-file-hint\">{}</small>",
            self.size_hint()
        ));
        self.close(html, "file", "f-file");
    }

    /// "Images, videos or PDF, up to N MB".
    fn size_hint(&self) -> String {
        let mb = self.max_upload_bytes.div_ceil(1024 * 1024);
        format!(
            "{} {} {}",
            self.lang.t("file_hint"),
            self.lang.number(i64::try_from(mb).unwrap_or(i64::MAX)),
            self.lang.t("mb")
        )
    }

    /// Beside an upload picker: a file (and its alt text) to upload into the target collection
    /// when the form is saved; the new document is then the field's value.
    fn upload_new(&self, html: &mut String, path: &str) {
        if !(self.can_save && self.can_upload) {
            return;
        }
        let id = dom_id(path);
        let file_path = format!("{path}._file");
        let alt_path = format!("{path}._alt");
        let alt_err = self.error(&alt_path);
        let alt = self.raw.get(&alt_path).cloned().unwrap_or_default();
        html.push_str(&format!(
            "<div class=\"upload-new\"><label for=\"{id}-file\">{}</label>\
             <input type=\"file\" id=\"{id}-file\" name=\"{}\" accept=\"{ACCEPT}\" aria-describedby=\"{id}-file-hint\">\
             <small class=\"hint\" id=\"{id}-file-hint\">{}</small>\
             <label for=\"{id}-alt\">{}</label><input type=\"text\" id=\"{id}-alt\" name=\"{}\" value=\"{}\"{}>",
            self.lang.t("upload_new"),
            esc(&file_path),
            self.size_hint(),
            self.lang.t("upload_alt"),
            esc(&alt_path),
            esc(&alt),
            if alt_err.is_some() {
                format!(" aria-invalid=\"true\" aria-describedby=\"{id}-alt-error\"")
            } else {
                String::new()
            }
        ));
        if let Some(e) = alt_err {
            html.push_str(&format!(
                "<p class=\"error\" id=\"{id}-alt-error\" role=\"alert\">{}</p>",
                esc(e)
            ));
        }
        html.push_str("</div>");
    }

    /// An audit diff (`{"field": {"before": …, "after": …}}`) as a before/after table.
    fn diff_table(&self, id: &str, v: &Value) -> Option<String> {
        let m = v.as_object().filter(|m| !m.is_empty())?;
        let is_diff = m.values().all(|e| {
            e.as_object()
                .is_some_and(|o| o.len() == 2 && o.contains_key("before") && o.contains_key("after"))
        });
        if !is_diff {
            return None;
        }
        let cell = |v: &Value| match v {
            Value::Null => "—".to_string(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let mut s = format!(
            "<table class=\"diff\" id=\"{id}\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            self.lang.t("field"),
            self.lang.t("before"),
            self.lang.t("after")
        );
        for (k, e) in m {
            s.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td class=\"before\">{}</td><td class=\"after\">{}</td></tr>",
                esc(k),
                esc(&cell(&e["before"])),
                esc(&cell(&e["after"]))
            ));
        }
        s.push_str("</tbody></table>");
        Some(s)
    }

    fn picker(&self, target: &str, name: &str, attrs: &str, current: &str) -> String {
        let opts = self.options.get(target).cloned().unwrap_or_default();
        let mut s = String::new();
        // Long lists get a search box: htmx reloads the options (same access), without
        // JavaScript the full list stays usable.
        if opts.len() >= PICKER_SEARCH_MIN {
            s.push_str(&format!(
                "<input type=\"search\" class=\"picker-search\" name=\"q\" aria-label=\"{} {}\" placeholder=\"{}…\" hx-get=\"/admin/options/{}\" hx-trigger=\"input changed delay:300ms\" hx-target=\"next select\" hx-swap=\"innerHTML\">",
                self.lang.t("search"),
                esc(target),
                self.lang.t("search"),
                esc(target)
            ));
        }
        s.push_str(&format!("<select name=\"{name}\"{attrs}>"));
        let mut list: Vec<(String, String)> = opts;
        if !current.is_empty() && !list.iter().any(|(id, _)| id == current) {
            // Keep a value the caller cannot list (e.g. outside the selected tenant).
            list.push((current.to_string(), current.to_string()));
        }
        s.push_str(&option_list(list.into_iter(), current, true));
        s.push_str("</select>");
        s
    }

    #[allow(clippy::too_many_arguments)]
    fn array(
        &self,
        html: &mut String,
        path: &str,
        id: &str,
        value: &Value,
        blocks: Option<&'static [Block]>,
        subs: Option<&'static [SubField]>,
        columns: Option<&'static [(&'static str, &'static str, ChildKind)]>,
    ) {
        let rows = value.as_array().cloned().unwrap_or_default();
        html.push_str(&format!(
            "<div class=\"rows\" role=\"group\" aria-labelledby=\"{id}-label\" id=\"{id}\"><input type=\"hidden\" name=\"_present\" value=\"{}\">",
            esc(path)
        ));
        if rows.is_empty() {
            html.push_str(&format!("<p class=\"empty\">{}</p>", self.lang.t("no_rows")));
        }
        let n = rows.len();
        for (i, row) in rows.iter().enumerate() {
            let p = format!("{path}.{i}");
            let block = blocks.and_then(|bs| {
                let slug = row.get("blockType").and_then(Value::as_str)?;
                bs.iter().find(|b| b.slug == slug)
            });
            let title = match block {
                Some(b) => format!(
                    "{} {} · {}",
                    self.lang.t("block"),
                    i + 1,
                    super::labels::part(self.lang, b.slug)
                ),
                None => format!("{} {}", self.lang.t("row"), i + 1),
            };
            html.push_str(&format!(
                "<fieldset class=\"row\" data-row=\"{}\"><legend>{}</legend><input type=\"hidden\" name=\"{}._row\" value=\"1\">",
                esc(&p),
                esc(&title),
                esc(&p)
            ));
            if let Some(rid) = row.get("id").and_then(Value::as_str) {
                html.push_str(&format!(
                    "<input type=\"hidden\" name=\"{}.id\" value=\"{}\">",
                    esc(&p),
                    esc(rid)
                ));
            }
            if let Some(b) = block {
                html.push_str(&format!(
                    "<input type=\"hidden\" name=\"{}.blockType\" value=\"{}\">",
                    esc(&p),
                    esc(b.slug)
                ));
            }
            let fields = block.map(|b| b.fields).or(subs).unwrap_or(&[]);
            for sub in fields {
                self.sub_field(
                    html,
                    &format!("{p}.{}", sub.name),
                    super::labels::part(self.lang, sub.name),
                    sub.required,
                    row.get(sub.name).unwrap_or(&Value::Null),
                    sub.kind,
                );
            }
            for (wire, _, kind) in columns.unwrap_or(&[]) {
                self.child_field(
                    html,
                    &format!("{p}.{wire}"),
                    super::labels::part(self.lang, wire),
                    row.get(*wire).unwrap_or(&Value::Null),
                    *kind,
                );
            }
            if self.can_save {
                html.push_str("<div class=\"row-actions\">");
                if i > 0 {
                    html.push_str(&format!(
                        "<button type=\"submit\" name=\"_op\" value=\"up:{}:{i}\" formnovalidate aria-label=\"{} {}\">↑</button>",
                        esc(path), self.lang.t("move_up"), esc(&title)
                    ));
                }
                if i + 1 < n {
                    html.push_str(&format!(
                        "<button type=\"submit\" name=\"_op\" value=\"down:{}:{i}\" formnovalidate aria-label=\"{} {}\">↓</button>",
                        esc(path), self.lang.t("move_down"), esc(&title)
                    ));
                }
                html.push_str(&format!(
                    "<button type=\"submit\" name=\"_op\" value=\"remove:{}:{i}\" formnovalidate class=\"danger\">{}</button></div>",
                    esc(path),
                    self.lang.t("remove")
                ));
            }
            html.push_str("</fieldset>");
        }
        if self.can_save {
            html.push_str("<div class=\"add-row\">");
            if let Some(bs) = blocks {
                html.push_str(&format!(
                    "<label for=\"{id}-add\">{}</label><select id=\"{id}-add\" name=\"_block.{}\">",
                    self.lang.t("block_type"),
                    esc(path)
                ));
                for b in bs {
                    html.push_str(&format!(
                        "<option value=\"{}\">{}</option>",
                        esc(b.slug),
                        esc(super::labels::part(self.lang, b.slug))
                    ));
                }
                html.push_str("</select>");
            }
            html.push_str(&format!(
                "<button type=\"submit\" name=\"_op\" value=\"add:{}\" formnovalidate>{}</button></div>",
                esc(path),
                self.lang
                    .t(if blocks.is_some() { "add_block" } else { "add_row" })
            ));
        }
        html.push_str("</div>");
    }

    /// Opens a row's field; `group` for a field that is a group of inputs (rows in the row).
    /// Returns the attributes of its input.
    fn sub_open(&self, html: &mut String, path: &str, label: &str, required: bool, group: bool) -> String {
        let id = dom_id(path);
        let err = self.error(path).is_some();
        html.push_str(&format!(
            "<div class=\"field{}\">{}",
            if err { " invalid" } else { "" },
            label_tag(&id, label, required, group)
        ));
        let mut a = format!(" id=\"{id}\" name=\"{}\"", esc(path));
        if err {
            a.push_str(&format!(" aria-invalid=\"true\" aria-describedby=\"{id}-error\""));
        }
        a
    }

    fn sub_field(
        &self,
        html: &mut String,
        path: &str,
        label: &str,
        required: bool,
        v: &Value,
        kind: SubKind,
    ) {
        let a = self.sub_open(html, path, label, required, matches!(kind, SubKind::Rows(_)));
        match kind {
            SubKind::Text => html.push_str(&format!(
                "<input type=\"text\"{a} value=\"{}\">",
                esc(&value_text(v))
            )),
            SubKind::RichText => html.push_str(&format!(
                "<textarea class=\"rich\"{a} rows=\"4\">{}</textarea>",
                esc(&rich_to_text(v))
            )),
            SubKind::Select(options) => {
                html.push_str(&format!("<select{a}>"));
                html.push_str(&option_list(
                    options.iter().map(|o| (o.to_string(), o.to_string())),
                    &value_text(v),
                    true,
                ));
                html.push_str("</select>");
            }
            SubKind::Upload(target) => {
                let current = v
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| v.get("id").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                html.push_str(
                    &self
                        .picker(target, "", &a, &current)
                        .replacen(" name=\"\"", "", 1),
                );
                self.upload_new(html, path);
            }
            // Rows inside a row: the same editor one level down, with paths of their own
            // (`layout.1.images.0.image`).
            SubKind::Rows(subs) => self.array(html, path, &dom_id(path), v, None, Some(subs), None),
        }
        self.close(html, path, &dom_id(path));
    }

    fn child_field(&self, html: &mut String, path: &str, label: &str, v: &Value, kind: ChildKind) {
        let id = dom_id(path);
        match kind {
            ChildKind::Bool => {
                let err = self.error(path).is_some();
                html.push_str(&format!(
                    "<div class=\"field check{}\"><input type=\"checkbox\" id=\"{id}\" name=\"{}\" value=\"true\"{}><label for=\"{id}\">{}</label>",
                    if err { " invalid" } else { "" },
                    esc(path),
                    if v.as_bool() == Some(true) { " checked" } else { "" },
                    esc(label)
                ));
            }
            ChildKind::List(options) => {
                let items: Vec<&str> = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|i| {
                                i.as_str()
                                    .or_else(|| i.as_object().and_then(|o| o.values().next()?.as_str()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                html.push_str(&format!(
                    "<div class=\"field\"><span class=\"label\" id=\"{id}-label\">{}</span><div class=\"choices\" role=\"group\" aria-labelledby=\"{id}-label\">",
                    esc(label)
                ));
                for o in options {
                    html.push_str(&format!(
                        "<label><input type=\"checkbox\" name=\"{}\" value=\"{o}\"{}> {o}</label>",
                        esc(path),
                        if items.contains(o) { " checked" } else { "" }
                    ));
                }
                html.push_str("</div>");
            }
            ChildKind::Select(options) => {
                let a = self.sub_open(html, path, label, false, false);
                html.push_str(&format!("<select{a}>"));
                html.push_str(&option_list(
                    options.iter().map(|o| (o.to_string(), o.to_string())),
                    &value_text(v),
                    true,
                ));
                html.push_str("</select>");
            }
            ChildKind::Relation(target) => {
                let a = self.sub_open(html, path, label, false, false);
                let current = v
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| v.get("id").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                html.push_str(
                    &self
                        .picker(target, "", &a, &current)
                        .replacen(" name=\"\"", "", 1),
                );
            }
            ChildKind::Date => {
                let a = self.sub_open(html, path, label, false, false);
                html.push_str(&format!(
                    "<input type=\"datetime-local\"{a} value=\"{}\">",
                    esc(&date_for_input(v))
                ));
            }
            ChildKind::Text => {
                let a = self.sub_open(html, path, label, false, false);
                html.push_str(&format!(
                    "<input type=\"text\"{a} value=\"{}\">",
                    esc(&value_text(v))
                ));
            }
        }
        self.close(html, path, &id);
    }
}

pub fn option_list(opts: impl Iterator<Item = (String, String)>, current: &str, blank: bool) -> String {
    let mut s = String::new();
    if blank {
        s.push_str("<option value=\"\">—</option>");
    }
    for (v, label) in opts {
        s.push_str(&format!(
            "<option value=\"{}\"{}>{}</option>",
            esc(&v),
            if v == current { " selected" } else { "" },
            esc(&label)
        ));
    }
    s
}

/// A scalar as input text.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// How a read-only value is shown (and a list cell).
pub fn display_value(f: &Field, v: &Value) -> String {
    match (&f.kind, v) {
        (_, Value::Null) => String::new(),
        (Kind::Json | Kind::Rows(_) | Kind::Blocks(_) | Kind::Child(_), v) => {
            serde_json::to_string_pretty(v).unwrap_or_default()
        }
        (Kind::RichText, v) => rich_to_text(v),
        (Kind::List { sub, .. }, Value::Array(a)) => a
            .iter()
            .filter_map(|i| i.get(*sub).or(Some(i)).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(", "),
        (Kind::Relation(_) | Kind::Upload(_), Value::Object(o)) => super::views::title_of(o),
        (Kind::Vector, _) => "…".into(),
        (_, v) => value_text(v),
    }
}

/// Engine validation errors by path (the first message per path).
pub fn errors_by_path(errors: &[FieldError]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for e in errors {
        m.entry(e.path.clone()).or_insert_with(|| e.message.clone());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collections::Registry;

    fn form(pairs: &[(&str, &str)]) -> FormInput {
        FormInput {
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn store_form_becomes_the_engines_json() {
        let registry = Registry::new();
        let stores = registry.get("stores").unwrap();
        let input = form(&[
            ("name", "Shop"),
            ("location.lng", "46.7"),
            ("location.lat", "24.7"),
            ("themeConfig", "{\"color\":\"red\"}"),
            ("seo.description", ""),
        ]);
        let parsed = body_from_form(stores, &input, true);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.body["location"], json!([46.7, 24.7]));
        assert_eq!(parsed.body["themeConfig"], json!({"color": "red"}));
        assert!(
            !parsed.body.contains_key("seo"),
            "empty on create: left to defaults"
        );
        // On update an emptied input clears the field.
        let parsed = body_from_form(stores, &input, false);
        assert_eq!(parsed.body["seo"], json!({"description": null}), "groups nest");
    }

    #[test]
    fn bad_json_and_coordinates_are_reported_with_the_typed_text() {
        let registry = Registry::new();
        let stores = registry.get("stores").unwrap();
        let input = form(&[
            ("location.lng", "east"),
            ("location.lat", "24"),
            ("themeConfig", "{oops"),
        ]);
        let parsed = body_from_form(stores, &input, true);
        let paths: Vec<&str> = parsed.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["themeConfig", "location"]);
        assert_eq!(parsed.raw["location.lng"], "east");
        assert_eq!(parsed.raw["themeConfig"], "{oops");
    }

    #[test]
    fn checkboxes_rows_and_row_ops() {
        let registry = Registry::new();
        let tenants = registry.get("tenants").unwrap();
        let input = form(&[
            ("_present", "subdomains"),
            ("subdomains.0._row", "1"),
            ("subdomains.0.subdomain", "a"),
            ("subdomains.0.isPrimary", "true"),
            ("subdomains.1._row", "1"),
            ("subdomains.1.subdomain", "b"),
        ]);
        let mut parsed = body_from_form(tenants, &input, true);
        assert_eq!(
            parsed.body["subdomains"],
            json!([{"subdomain": "a", "isPrimary": true}, {"subdomain": "b", "isPrimary": false}])
        );
        RowOp::Up {
            field: "subdomains".into(),
            index: 1,
        }
        .apply(tenants, &mut parsed.body);
        assert_eq!(parsed.body["subdomains"][0]["subdomain"], "b");
        RowOp::Remove {
            field: "subdomains".into(),
            index: 0,
        }
        .apply(tenants, &mut parsed.body);
        assert_eq!(parsed.body["subdomains"].as_array().unwrap().len(), 1);
        RowOp::Add {
            field: "subdomains".into(),
            block: None,
        }
        .apply(tenants, &mut parsed.body);
        assert_eq!(parsed.body["subdomains"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn rows_inside_a_block_are_parsed_edited_and_resolved_for_uploads() {
        let registry = Registry::new();
        let products = registry.get("product-content").unwrap();
        let image = "0190d2f4-0000-7000-8000-0000000000aa";
        let input = form(&[
            ("_present", "contentBlocks"),
            ("contentBlocks.0._row", "1"),
            ("contentBlocks.0.blockType", "imageGallery"),
            ("_present", "contentBlocks.0.images"),
            ("contentBlocks.0.images.0._row", "1"),
            ("contentBlocks.0.images.0.image", image),
            ("contentBlocks.0.images.0.caption", "Front"),
            ("contentBlocks.0.images.1._row", "1"),
            ("contentBlocks.0.images.1.caption", "Back"),
        ]);
        assert!(has_upload_fields(products));
        assert_eq!(
            upload_target(products, &input, "contentBlocks.0.images.1.image"),
            Some("media")
        );
        assert_eq!(
            upload_target(products, &input, "contentBlocks.0.images.1.caption"),
            None
        );
        assert_eq!(
            upload_target(products, &input, "contentBlocks.0.images.x.image"),
            None
        );
        let mut parsed = body_from_form(products, &input, true);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(
            parsed.body["contentBlocks"],
            json!([{"blockType": "imageGallery", "images": [
                {"image": image, "caption": "Front"},
                {"caption": "Back"},
            ]}])
        );
        let op = |verb: &str| RowOp::from_form(&form(&[("_op", verb)])).expect("a row edit");
        op("down:contentBlocks.0.images:0").apply(products, &mut parsed.body);
        assert_eq!(parsed.body["contentBlocks"][0]["images"][0]["caption"], "Back");
        op("add:contentBlocks.0.images").apply(products, &mut parsed.body);
        assert_eq!(parsed.body["contentBlocks"][0]["images"][2], json!({}));
        op("remove:contentBlocks.0.images:0").apply(products, &mut parsed.body);
        let captions: Vec<&Value> = parsed.body["contentBlocks"][0]["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["caption"])
            .collect();
        assert_eq!(captions, [&json!("Front"), &Value::Null]);
        // A block without rows yet gets its first; edits that lead nowhere change nothing.
        op("add:contentBlocks").apply(products, &mut parsed.body);
        op("add:contentBlocks.1.images").apply(products, &mut parsed.body);
        assert_eq!(parsed.body["contentBlocks"][1]["images"], json!([{}]));
        let before = parsed.body.clone();
        for verb in [
            "add:contentBlocks.7.images",
            "add:contentBlocks.0.blockType",
            "remove:contentBlocks.0.images:9",
            "add:contentBlocks.x.images",
            "up:contentBlocks.0.images.0:0",
        ] {
            op(verb).apply(products, &mut parsed.body);
            assert_eq!(parsed.body, before, "{verb}");
        }
    }

    #[test]
    fn rich_text_round_trips_through_the_editor() {
        let doc = rich_from_text("First paragraph.\r\n\r\nSecond one.");
        assert_eq!(doc["root"]["children"].as_array().unwrap().len(), 2);
        assert_eq!(rich_to_text(&doc), "First paragraph.\n\nSecond one.");
    }
}
