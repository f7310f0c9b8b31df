//! Per-collection hooks: small functions the engine calls at fixed points, named in the
//! declaration. Write hooks run inside the write's transaction, so what they write commits or
//! rolls back with the change (the transactional outbox of sync jobs hangs here).
//!
//! - `before_validate`: on the incoming (merged) document before validation: derive or normalise
//!   fields so validation sees them (a slug from the title), or refuse a transition;
//! - `before_change`: on the valid document just before it is written (stamps such as
//!   `publishedAt`); what it sets is validated again;
//! - `after_change`: after a create/update, with the connection of the transaction;
//! - `after_delete`: after a delete, same transaction;
//! - `after_read`: on every document read (computed fields such as media URLs).

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::collections::access::Action;
use crate::http::error::{ApiError, FieldError};

/// What a `before_validate` or `before_change` hook sees.
pub struct ChangeCtx<'a> {
    pub action: Action,
    /// The stored document before the change (updates only).
    pub original: Option<&'a Map<String, Value>>,
    /// The document as it will be written (declaration names, e.g. `seo.title`).
    pub data: &'a mut Map<String, Value>,
    /// Values the create/update response shows once and nothing stores (a new API key).
    pub reveal: &'a mut Map<String, Value>,
    /// `API_KEY_HASH_SALT`, for hooks that derive stored key hashes.
    pub api_key_salt: &'a str,
}

/// A committed-with-the-transaction change, for `after_change` and `after_delete`.
pub struct ChangeEvent<'a> {
    pub action: Action,
    pub collection: &'static str,
    pub id: Uuid,
    pub tenant: Option<Uuid>,
    pub before: Option<&'a Map<String, Value>>,
    /// The stored document after the change (flat, depth 0); `None` after a delete.
    pub after: Option<&'a Map<String, Value>>,
}

/// What an `after_read` hook may use.
pub struct ReadCtx<'a> {
    pub app_url: &'a str,
}

pub type BeforeChange = fn(&mut ChangeCtx<'_>) -> Result<(), FieldError>;
pub type AfterChange =
    for<'a> fn(&'a mut PgConnection, &'a ChangeEvent<'a>) -> BoxFuture<'a, Result<(), ApiError>>;
pub type AfterRead = fn(&mut Map<String, Value>, &ReadCtx<'_>);

#[derive(Debug, Clone, Copy, Default)]
pub struct Hooks {
    pub before_validate: Option<BeforeChange>,
    pub before_change: Option<BeforeChange>,
    pub after_change: Option<AfterChange>,
    pub after_delete: Option<AfterChange>,
    pub after_read: Option<AfterRead>,
}

impl Hooks {
    pub const NONE: Hooks = Hooks {
        before_validate: None,
        before_change: None,
        after_change: None,
        after_delete: None,
        after_read: None,
    };
}

/// `slug` from `title` when none is given (before validation, so the slug's format and
/// uniqueness are checked like a typed one).
pub fn slug_from_title(ctx: &mut ChangeCtx<'_>) -> Result<(), FieldError> {
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
    Ok(())
}

/// `publishedAt` set the first time a valid document is written as `published`.
pub fn stamp_published_at(ctx: &mut ChangeCtx<'_>) -> Result<(), FieldError> {
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
    Ok(())
}

/// API keys: a new key is generated on create (its plaintext revealed once, its HMAC stored);
/// revocation stamps `revokedAt` and is final.
pub fn api_key_lifecycle(ctx: &mut ChangeCtx<'_>) -> Result<(), FieldError> {
    let now = || Value::String(crate::util::format_timestamp(time::OffsetDateTime::now_utc()));
    match ctx.action {
        Action::Create => {
            let key = crate::auth::api_keys::generate(ctx.api_key_salt);
            ctx.data.insert("prefix".into(), Value::String(key.prefix));
            ctx.data.insert("keyHash".into(), Value::String(key.hash_hex));
            ctx.reveal.insert("key".into(), Value::String(key.plaintext));
            if ctx.data.get("status").and_then(Value::as_str) == Some("revoked") {
                ctx.data.insert("revokedAt".into(), now());
            }
        }
        _ => {
            let was = ctx.original.and_then(|o| o.get("status")).and_then(Value::as_str);
            let is = ctx.data.get("status").and_then(Value::as_str);
            if was == Some("revoked") && is != Some("revoked") {
                return Err(FieldError::new(
                    "status",
                    Some("Status"),
                    "A revoked key cannot be reactivated.",
                ));
            }
            if was != Some("revoked") && is == Some("revoked") {
                ctx.data.insert("revokedAt".into(), now());
            }
        }
    }
    Ok(())
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

/// Media documents carry their file URLs (computed, never stored): `url`, `thumbnailURL` and
/// each size's `url`. Tenant media is addressed as `/api/media/file/{tenant id}/{filename}` so
/// two tenants' `logo.png` stay apart; public media as `/api/media/file/{filename}`.
pub fn media_urls(doc: &mut Map<String, Value>, ctx: &ReadCtx<'_>) {
    let tenant = match doc.get("tenant") {
        Some(Value::String(t)) => Some(t.clone()),
        Some(Value::Object(t)) => t.get("id").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let url = |name: &str| {
        let encoded = form_urlencoded::byte_serialize(name.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        match &tenant {
            Some(t) => format!("{}/api/media/file/{t}/{encoded}", ctx.app_url),
            None => format!("{}/api/media/file/{encoded}", ctx.app_url),
        }
    };
    if let Some(name) = doc.get("filename").and_then(Value::as_str) {
        let u = url(name);
        doc.insert("url".into(), Value::String(u));
    }
    let mut thumbnail = Value::Null;
    if let Some(Value::Object(sizes)) = doc.get_mut("sizes") {
        for (size_name, size) in sizes.iter_mut() {
            let Value::Object(size) = size else { continue };
            let u = match size.get("filename").and_then(Value::as_str) {
                Some(name) => Value::String(url(name)),
                None => Value::Null,
            };
            if size_name == "thumbnail" {
                thumbnail = u.clone();
            }
            size.insert("url".into(), u);
        }
    }
    if doc.contains_key("filename") {
        doc.insert("thumbnailURL".into(), thumbnail);
    }
}

/// Queues a push to Medusa in the same transaction as the change (transactional outbox).
/// Repeated edits while a job is still queued coalesce into that job.
async fn enqueue_medusa_push(
    conn: &mut PgConnection,
    ev: &ChangeEvent<'_>,
    target_id: Option<String>,
) -> Result<(), ApiError> {
    let Some(after) = ev.after else { return Ok(()) };
    let updated_at = after.get("updatedAt").and_then(Value::as_str).unwrap_or("");
    let key = format!("payload_to_medusa:{}:{}:{updated_at}", ev.collection, ev.id);
    let store = after
        .get("store")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    sqlx::query(
        "INSERT INTO sync_jobs (job_type, tenant_id, store_id, source_collection, source_doc_id, target_system,
                                target_id, payload, idempotency_key)
         VALUES ('payload_to_medusa', $1, $2, $3, $4, 'medusa', $5, $6, $7)
         ON CONFLICT DO NOTHING",
    )
    .bind(ev.tenant)
    .bind(store)
    .bind(ev.collection)
    .bind(ev.id.to_string())
    .bind(target_id)
    .bind(sqlx::types::Json(after))
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Product content: publishing pushes the editorial content to Medusa and marks it pending.
pub fn product_content_sync<'a>(
    conn: &'a mut PgConnection,
    ev: &'a ChangeEvent<'a>,
) -> BoxFuture<'a, Result<(), ApiError>> {
    Box::pin(async move {
        let published = ev
            .after
            .and_then(|a| a.get("editorialStatus"))
            .and_then(Value::as_str)
            == Some("published");
        if !published {
            return Ok(());
        }
        sqlx::query("UPDATE product_content SET sync_status = 'pending' WHERE id = $1")
            .bind(ev.id)
            .execute(&mut *conn)
            .await?;
        let target = ev
            .after
            .and_then(|a| a.get("medusaProductId"))
            .and_then(Value::as_str)
            .map(str::to_string);
        enqueue_medusa_push(conn, ev, target).await
    })
}

/// Pages (original behaviour): a change that leaves the page published is pushed to Medusa.
pub fn published_page_sync<'a>(
    conn: &'a mut PgConnection,
    ev: &'a ChangeEvent<'a>,
) -> BoxFuture<'a, Result<(), ApiError>> {
    Box::pin(async move {
        let published = ev.after.and_then(|a| a.get("status")).and_then(Value::as_str) == Some("published");
        if published {
            enqueue_medusa_push(conn, ev, None).await?;
        }
        Ok(())
    })
}

/// Stores linked to a Medusa vendor are pushed to Medusa when they change (original behaviour).
pub fn vendor_store_sync<'a>(
    conn: &'a mut PgConnection,
    ev: &'a ChangeEvent<'a>,
) -> BoxFuture<'a, Result<(), ApiError>> {
    Box::pin(async move {
        let vendor = ev
            .after
            .and_then(|a| a.get("medusaVendorId"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if vendor.is_some() {
            enqueue_medusa_push(conn, ev, vendor).await?;
        }
        Ok(())
    })
}

/// Deleting a user revokes the API keys it owns.
pub fn revoke_owned_keys<'a>(
    conn: &'a mut PgConnection,
    ev: &'a ChangeEvent<'a>,
) -> BoxFuture<'a, Result<(), ApiError>> {
    Box::pin(async move {
        sqlx::query(
            "UPDATE api_keys SET status = 'revoked', revoked_at = now()
             WHERE owner_type = 'user' AND owner_ref = $1 AND status <> 'revoked'",
        )
        .bind(ev.id.to_string())
        .execute(conn)
        .await?;
        Ok(())
    })
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

    /// Runs a data hook as the engine does, expecting it to accept the document.
    fn run(hook: BeforeChange, original: Option<&Map<String, Value>>, data: &mut Map<String, Value>) {
        let action = if original.is_some() {
            Action::Update
        } else {
            Action::Create
        };
        hook(&mut ChangeCtx {
            action,
            original,
            data,
            reveal: &mut Map::new(),
            api_key_salt: "",
        })
        .unwrap();
    }

    #[test]
    fn published_at_is_set_once() {
        let mut data = Map::new();
        data.insert("title".into(), "A Title".into());
        data.insert("status".into(), "published".into());
        run(slug_from_title, None, &mut data);
        assert_eq!(data["slug"], "a-title");
        assert!(
            data.get("publishedAt").is_none(),
            "stamped only before the change"
        );
        run(stamp_published_at, None, &mut data);
        assert_eq!(data["slug"], "a-title");
        assert!(data["publishedAt"].is_string());

        let original = data.clone();
        let mut again = data.clone();
        again.insert("publishedAt".into(), Value::Null);
        run(stamp_published_at, Some(&original), &mut again);
        assert!(
            again["publishedAt"].is_null(),
            "already published before: left alone"
        );
    }

    #[test]
    fn media_url_is_encoded() {
        let mut doc = Map::new();
        doc.insert("filename".into(), "summer sale.png".into());
        media_urls(
            &mut doc,
            &ReadCtx {
                app_url: "https://cms.example.sa",
            },
        );
        assert_eq!(
            doc["url"],
            "https://cms.example.sa/api/media/file/summer%20sale.png"
        );
        assert!(doc["thumbnailURL"].is_null());
    }

    #[test]
    fn tenant_media_urls_carry_the_tenant_and_sizes_get_theirs() {
        let mut doc = serde_json::json!({
            "tenant": "50000000-0000-4000-8000-000000000001",
            "filename": "logo.png",
            "sizes": {"thumbnail": {"filename": "logo-300x300.png"}, "card": {"filename": null}}
        })
        .as_object()
        .unwrap()
        .clone();
        media_urls(&mut doc, &ReadCtx { app_url: "" });
        let base = "/api/media/file/50000000-0000-4000-8000-000000000001";
        assert_eq!(doc["url"], format!("{base}/logo.png"));
        assert_eq!(doc["thumbnailURL"], format!("{base}/logo-300x300.png"));
        assert_eq!(
            doc["sizes"]["thumbnail"]["url"],
            format!("{base}/logo-300x300.png")
        );
        assert!(doc["sizes"]["card"]["url"].is_null());
    }
}
