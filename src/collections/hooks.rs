//! Per-collection hooks: small functions the engine calls at fixed points of a write.
//!
//! `before_change` runs on the merged document (wire names → JSON values) before validation
//! and inside the write's transaction, so it can derive fields (a slug from the title,
//! `publishedAt` when a page is first published).

use serde_json::{Map, Value};

use crate::collections::access::Action;

/// What a `before_change` hook sees.
pub struct ChangeCtx<'a> {
    pub action: Action,
    /// The stored document before the change (updates only).
    pub original: Option<&'a Map<String, Value>>,
    /// The document as it will be written (wire names; groups nested).
    pub data: &'a mut Map<String, Value>,
}

pub type BeforeChange = fn(&mut ChangeCtx<'_>);

#[derive(Debug, Clone, Copy, Default)]
pub struct Hooks {
    pub before_change: Option<BeforeChange>,
}

/// `slug` from `title` when none is given; `publishedAt` set the first time status is `published`.
pub fn content_defaults(ctx: &mut ChangeCtx<'_>) {
    let has_slug = ctx
        .data
        .get("slug")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has_slug {
        if let Some(title) = ctx.data.get("title").and_then(Value::as_str) {
            let slug = slugify(title);
            if !slug.is_empty() {
                ctx.data.insert("slug".into(), Value::String(slug));
            }
        }
    }
    let published = ctx.data.get("status").and_then(Value::as_str) == Some("published");
    let had = ctx
        .original
        .and_then(|o| o.get("publishedAt"))
        .is_some_and(|v| !v.is_null());
    if published && !had {
        ctx.data.insert(
            "publishedAt".into(),
            Value::String(crate::util::format_timestamp(time::OffsetDateTime::now_utc())),
        );
    }
}

/// Lower-case ASCII words joined by `-` (non-ASCII letters are dropped, as Payload's formatSlug does).
pub fn slugify(text: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
    }
    out.truncate(200);
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugify_makes_spec_conformant_slugs() {
        assert_eq!(slugify("Hello, World!  2026"), "hello-world-2026");
        assert_eq!(slugify("  --Summer Sale-- "), "summer-sale");
        assert_eq!(slugify("عربي"), "");
    }

    #[test]
    fn published_at_is_set_once() {
        let mut data = Map::new();
        data.insert("title".into(), "A Title".into());
        data.insert("status".into(), "published".into());
        content_defaults(&mut ChangeCtx {
            action: Action::Create,
            original: None,
            data: &mut data,
        });
        assert_eq!(data["slug"], "a-title");
        assert!(data["publishedAt"].is_string());

        let original = data.clone();
        let mut again = data.clone();
        again.insert("publishedAt".into(), Value::Null);
        content_defaults(&mut ChangeCtx {
            action: Action::Update,
            original: Some(&original),
            data: &mut again,
        });
        // Already published before: the hook leaves the value the engine merges back.
        assert!(again["publishedAt"].is_null());
    }
}
