//! The query-string parser, producing the same tree as `qs-esm` with Payload's options
//! (`depth: 10`, `arrayLimit: 1000`, `allowEmptyArrays`, 1000 parameters). Every leaf is a
//! string; typing happens later, per field.

use serde_json::{Map, Value};

const MAX_DEPTH: usize = 10;
const ARRAY_LIMIT: usize = 1000;
const PARAMETER_LIMIT: usize = 1000;

/// Parses a raw query string (with or without the leading `?`) into a JSON tree.
pub fn parse(query: &str) -> Value {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut root = Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()).take(PARAMETER_LIMIT) {
        if key.is_empty() {
            continue;
        }
        let segments = split_key(&key);
        insert(&mut root, &segments, value.into_owned());
    }
    finalize(Value::Object(root))
}

/// `where[a][b]` → `["where", "a", "b"]`; past 10 levels the rest stays one literal key.
fn split_key(key: &str) -> Vec<String> {
    let (head, mut rest) = match key.find('[') {
        Some(0) | None => return vec![key.to_string()],
        Some(i) => (&key[..i], &key[i..]),
    };
    let mut segments = vec![head.to_string()];
    let mut levels = 0;
    while rest.starts_with('[') {
        if levels == MAX_DEPTH {
            segments.push(rest.to_string());
            return segments;
        }
        match rest.find(']') {
            Some(end) => {
                segments.push(rest[1..end].to_string());
                rest = &rest[end + 1..];
                levels += 1;
            }
            None => break,
        }
    }
    if !rest.is_empty() {
        // Text after the brackets (`a[b]c`) is kept as a literal segment, as qs does.
        segments.push(rest.to_string());
    }
    segments
}

fn next_index(map: &Map<String, Value>) -> String {
    map.keys()
        .filter(|k| array_index(k).is_some())
        .count()
        .to_string()
}

fn insert(map: &mut Map<String, Value>, segments: &[String], value: String) {
    let mut key = segments[0].clone();
    if key.is_empty() {
        key = next_index(map);
    }
    if segments.len() == 1 {
        match map.get_mut(&key) {
            None => {
                map.insert(key, Value::String(value));
            }
            Some(Value::String(old)) => {
                let old = std::mem::take(old);
                map.insert(key, Value::Array(vec![Value::String(old), Value::String(value)]));
            }
            Some(Value::Array(items)) => items.push(Value::String(value)),
            Some(Value::Object(obj)) => {
                // `a[x]=1&a=2`: qs merges the plain value in under the next index.
                let idx = next_index(obj);
                obj.insert(idx, Value::String(value));
            }
            Some(_) => {}
        }
        return;
    }
    // `a[]` or `a[]=` with nothing else: an empty array.
    if segments.len() == 2 && segments[1].is_empty() && value.is_empty() {
        map.entry(key).or_insert_with(|| Value::Object(Map::new()));
        return;
    }
    let child = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if let Value::String(s) = child {
        let mut m = Map::new();
        m.insert("0".into(), Value::String(std::mem::take(s)));
        *child = Value::Object(m);
    }
    if let Value::Array(items) = child {
        let mut m = Map::new();
        for (i, v) in items.drain(..).enumerate() {
            m.insert(i.to_string(), v);
        }
        *child = Value::Object(m);
    }
    if let Value::Object(obj) = child {
        insert(obj, &segments[1..], value);
    }
}

fn array_index(key: &str) -> Option<usize> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<usize>().ok().filter(|i| *i <= ARRAY_LIMIT)
}

/// Maps whose keys are all array indexes become arrays (compacted in index order).
fn finalize(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            if map.is_empty() {
                return Value::Array(Vec::new());
            }
            if map.keys().all(|k| array_index(k).is_some()) {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (array_index(&k).unwrap_or(0), finalize(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, finalize(v))).collect())
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(finalize).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Leaves of a client object as qs-esm writes them: strings, `null` → "".
    fn stringify_leaves(v: &Value) -> Value {
        match v {
            Value::Null => json!(""),
            Value::Bool(b) => json!(b.to_string()),
            Value::Number(n) => json!(n.to_string()),
            Value::String(_) => v.clone(),
            Value::Array(a) => Value::Array(a.iter().map(stringify_leaves).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), stringify_leaves(v))).collect())
            }
        }
    }

    #[test]
    fn every_shared_qs_case_round_trips() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/qs-cases.json"
        ))
        .expect("qs cases fixture");
        let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(cases.len(), 15);
        for case in cases {
            let parsed = parse(case["query"].as_str().unwrap());
            assert_eq!(parsed, stringify_leaves(&case["object"]), "case {}", case["name"]);
        }
    }

    #[test]
    fn arrays_sparse_indexes_repeats_and_limits() {
        assert_eq!(parse("a[1]=x&a[5]=y"), json!({"a": ["x", "y"]}));
        assert_eq!(parse("a[]=x&a[]=y"), json!({"a": ["x", "y"]}));
        assert_eq!(parse("a[1001]=x"), json!({"a": {"1001": "x"}}));
        assert_eq!(parse("a[0]=x&a[b]=y"), json!({"a": {"0": "x", "b": "y"}}));
        assert_eq!(parse("sort=a&sort=-b"), json!({"sort": ["a", "-b"]}));
        assert_eq!(parse("a[]="), json!({"a": []}));
        assert_eq!(parse("where.title=x"), json!({"where.title": "x"}));
        assert_eq!(
            parse("where[tenant.slug][equals]=gold"),
            json!({"where": {"tenant.slug": {"equals": "gold"}}})
        );
        assert_eq!(parse("q=a+b%20c"), json!({"q": "a b c"}));
    }

    #[test]
    fn depth_beyond_ten_is_kept_literally() {
        let parsed = parse("a[b1][b2][b3][b4][b5][b6][b7][b8][b9][b10][b11][b12]=x");
        let mut v = &parsed["a"];
        for _ in 0..10 {
            v = v.as_object().and_then(|o| o.values().next()).unwrap();
        }
        assert_eq!(v, &json!({"[b11][b12]": "x"}));
    }

    #[test]
    fn only_the_first_thousand_parameters_are_read() {
        let q: Vec<String> = (0..1100).map(|i| format!("k{i}=v")).collect();
        let parsed = parse(&q.join("&"));
        assert_eq!(parsed.as_object().unwrap().len(), 1000);
    }
}
