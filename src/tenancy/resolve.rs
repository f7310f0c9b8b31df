//! The tenant context of a request, resolved once, first hit wins:
//! 1. signed gateway headers (`x-cityos-*`, HMAC over `{tenant}:{store}:{portal}:{ms}`) — a bad,
//!    stale or incomplete set is 401 and never falls through to weaker sources;
//! 2. custom domain (`Host` = a tenant's or store's `customDomains`);
//! 3. subdomain (`Host` = `<labels>.<base>` for a base in `CITYOS_BASE_DOMAINS`);
//! 4. slug (`?tenant=<handle>` / `X-Tenant`, with `&store=<handle>`);
//! 5. the `cityos-selected-tenant` / `-store` cookies, for super admins only, checked in the database.
//!
//! Host and handle lookups come from per-instance caches emptied by `NOTIFY cityos_context`.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use hmac::Mac;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::principal::Principal;
use crate::collections::access::TenantContext;
use crate::collections::engine::validate::valid_label;
use crate::http::error::ApiError;
use crate::http::extract::cookie;
use crate::notify::NotifiedCache;

/// A host's owner, from `cityos_resolve_host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub tenant_id: Uuid,
    pub store_id: Option<Uuid>,
    pub kind: String,
    pub tenant_status: String,
}

/// Hosts → owners (misses cached too: most requests of an unknown host repeat it).
pub struct HostDirectory {
    cache: Arc<NotifiedCache<Vec<HostEntry>>>,
}

impl HostDirectory {
    pub fn new() -> Arc<HostDirectory> {
        Arc::new(HostDirectory {
            cache: NotifiedCache::new(10_000),
        })
    }

    pub async fn lookup(&self, pool: &sqlx::PgPool, host: &str) -> Result<Vec<HostEntry>, sqlx::Error> {
        if let Some(hit) = self.cache.get(host) {
            return Ok(hit);
        }
        let generation = self.cache.generation();
        let rows: Vec<(Uuid, Option<Uuid>, String, String)> =
            sqlx::query_as("SELECT tenant_id, store_id, kind, tenant_status FROM cityos_resolve_host($1)")
                .bind(host)
                .fetch_all(pool)
                .await?;
        let entries: Vec<HostEntry> = rows
            .into_iter()
            .map(|(tenant_id, store_id, kind, tenant_status)| HostEntry {
                tenant_id,
                store_id,
                kind,
                tenant_status,
            })
            .collect();
        self.cache.insert(host.to_string(), entries.clone(), generation);
        Ok(entries)
    }

    pub fn clear(&self) {
        self.cache.clear();
    }

    pub fn listen(&self, listeners: &crate::notify::Listeners) {
        self.cache.listen(listeners, "cityos_context")
    }
}

/// The signed string of the gateway headers.
pub fn gateway_signing_input(tenant: &str, store: &str, portal: &str, timestamp_ms: &str) -> String {
    format!("{tenant}:{store}:{portal}:{timestamp_ms}")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The request's `Host` without port or trailing dot, lower-case.
fn request_host(headers: &HeaderMap) -> Option<String> {
    let raw = header_str(headers, header::HOST.as_str())?;
    let host = if raw.starts_with('[') {
        raw.split(']').next().map(|h| format!("{h}]"))?
    } else {
        raw.rsplit_once(':').map(|(h, _)| h).unwrap_or(raw).to_string()
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

fn refused(message: &str) -> ApiError {
    ApiError::Unauthorized(message.to_string())
}

/// Resolves the tenant context (see the module documentation for the order).
pub async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    query: &str,
    principal: &Principal,
) -> Result<TenantContext, ApiError> {
    let super_admin = principal.is_super_admin();
    let guard_status = |status: &str| -> Result<(), ApiError> {
        if status == "suspended" && !super_admin {
            Err(ApiError::Forbidden)
        } else {
            Ok(())
        }
    };

    // 1. Signed gateway headers: all or nothing.
    let parts = [
        header_str(headers, "x-cityos-tenant-id"),
        header_str(headers, "x-cityos-timestamp"),
        header_str(headers, "x-cityos-sig"),
    ];
    if parts.iter().any(Option::is_some) {
        let [Some(tenant), Some(ts), Some(sig)] = parts else {
            return Err(refused("Incomplete signed tenant headers."));
        };
        let store = header_str(headers, "x-cityos-store-id").unwrap_or("");
        let portal = header_str(headers, "x-cityos-portal-type").unwrap_or("");
        let ts_ms: i64 = ts
            .parse()
            .map_err(|_| refused("Invalid signed tenant headers."))?;
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let window_ms = state.config.webhook_replay_window_secs as i64 * 1000;
        if (now_ms - ts_ms).abs() > window_ms {
            return Err(refused("The signed tenant headers have expired."));
        }
        let expected_input = gateway_signing_input(tenant, store, portal, ts);
        let mut mac = crate::util::hmac_sha256(state.config.secrets.signature_secret.expose().as_bytes());
        mac.update(expected_input.as_bytes());
        let given = hex::decode(sig).unwrap_or_default();
        if mac.verify_slice(&given).is_err() {
            return Err(refused("Invalid signature on the tenant headers."));
        }
        let tenant_id =
            Uuid::parse_str(tenant).map_err(|_| refused("Unknown tenant in the signed headers."))?;
        let store_id = if store.is_empty() {
            None
        } else {
            Some(Uuid::parse_str(store).map_err(|_| refused("Unknown store in the signed headers."))?)
        };
        let row: Option<(String, bool)> = sqlx::query_as(
            "SELECT t.status, ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM stores s WHERE s.id = $2 AND s.tenant_id = t.id))
             FROM tenants t WHERE t.id = $1",
        )
        .bind(tenant_id)
        .bind(store_id)
        .fetch_optional(&state.pool)
        .await?;
        let Some((status, store_ok)) = row else {
            return Err(refused("Unknown tenant in the signed headers."));
        };
        if !store_ok {
            return Err(refused("Unknown store in the signed headers."));
        }
        guard_status(&status)?;
        return Ok(TenantContext {
            tenant_id: Some(tenant_id),
            store_id,
            source: "signed_headers",
        });
    }

    // 2 and 3. The Host: a custom domain, else a subdomain of a base domain.
    if let Some(host) = request_host(headers) {
        let entries = state.hosts.lookup(&state.pool, &host).await?;
        if let Some(e) = entries.iter().find(|e| e.kind == "custom") {
            guard_status(&e.tenant_status)?;
            return Ok(TenantContext {
                tenant_id: Some(e.tenant_id),
                store_id: e.store_id,
                source: "custom_domain",
            });
        }
        for base in &state.config.base_domains {
            let Some(label) = host.strip_suffix(base.as_str()).and_then(|l| l.strip_suffix('.')) else {
                continue;
            };
            if label.is_empty() {
                continue;
            }
            let entries = state.hosts.lookup(&state.pool, label).await?;
            if let Some(e) = entries.iter().find(|e| e.kind == "subdomain") {
                guard_status(&e.tenant_status)?;
                return Ok(TenantContext {
                    tenant_id: Some(e.tenant_id),
                    store_id: e.store_id,
                    source: "subdomain",
                });
            }
        }
    }

    // 4. The slug.
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    };
    let handle = param("tenant").or_else(|| header_str(headers, "x-tenant").map(str::to_string));
    if let Some(handle) = handle {
        // A handle that breaks the handle format (the table's CHECK) names no tenant: no query.
        let entry = if valid_label(&handle) {
            state.tenants.by_handle(&state.pool, &handle).await?
        } else {
            None
        };
        return match entry {
            Some(t) => {
                guard_status(&t.status)?;
                let store_id = match param("store").filter(|s| valid_label(s)) {
                    Some(store) => {
                        sqlx::query_scalar("SELECT id FROM stores WHERE tenant_id = $1 AND handle = $2")
                            .bind(t.id)
                            .bind(store)
                            .fetch_optional(&state.pool)
                            .await?
                    }
                    None => None,
                };
                Ok(TenantContext {
                    tenant_id: Some(t.id),
                    store_id,
                    source: "slug",
                })
            }
            // An unknown tenant resolves to a tenant nothing belongs to: no content.
            None => Ok(TenantContext {
                tenant_id: Some(Uuid::nil()),
                store_id: None,
                source: "slug",
            }),
        };
    }

    // 5. The super admin's selection cookies, checked against the database.
    if super_admin {
        if let Some(id) = cookie(headers, "cityos-selected-tenant").and_then(|v| Uuid::parse_str(&v).ok()) {
            let store = cookie(headers, "cityos-selected-store").and_then(|v| Uuid::parse_str(&v).ok());
            let row: Option<Option<Uuid>> = sqlx::query_scalar(
                "SELECT (SELECT s.id FROM stores s WHERE s.id = $2 AND s.tenant_id = t.id) FROM tenants t WHERE t.id = $1",
            )
            .bind(id)
            .bind(store)
            .fetch_optional(&state.pool)
            .await?;
            if let Some(store_id) = row {
                return Ok(TenantContext {
                    tenant_id: Some(id),
                    store_id,
                    source: "cookie",
                });
            }
        }
    }
    Ok(TenantContext {
        tenant_id: None,
        store_id: None,
        source: "none",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specs_worked_example_signs_as_given() {
        let input = gateway_signing_input(
            "7f1c2a9e-0000-4000-8000-000000000001",
            "",
            "public",
            "1795515311000",
        );
        assert_eq!(
            input,
            "7f1c2a9e-0000-4000-8000-000000000001::public:1795515311000"
        );
        let mut mac = crate::util::hmac_sha256(b"cityos-example-signature-secret");
        mac.update(input.as_bytes());
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "8582e91cf2d71229e16f71ebb41ada05ada1ac610a2552cfaa394380a1038688"
        );
    }

    #[test]
    fn hosts_lose_port_case_and_trailing_dot() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "Shop.Fashionista.SA.:8443".parse().unwrap());
        assert_eq!(request_host(&h).as_deref(), Some("shop.fashionista.sa"));
    }
}
