//! Medusa v2 Admin API client (integrations spec §4): secret API key as HTTP Basic
//! (`base64("sk_…:")`), connect 2 s / request timeout from config, the job's idempotency key as
//! `Idempotency-Key`. Errors are classified for the queue: connection problems, timeouts, 409,
//! 429 and 5xx are retried; other 4xx are permanent. Error bodies travel into `lastError`.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use uuid::Uuid;

use super::queue::{truncate, Outcome};
use super::Integrations;
use crate::db::scope::{begin, DbScope};

/// Where and how to call Medusa for one tenant.
#[derive(Clone)]
pub struct MedusaTarget {
    pub base_url: String,
    pub api_key: Option<String>,
    pub timeout: Option<Duration>,
}

impl std::fmt::Debug for MedusaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MedusaTarget")
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// A failed call, as the queue sees it.
#[derive(Debug)]
pub struct CallError {
    pub retryable: bool,
    pub message: String,
    pub retry_after: Option<Duration>,
    pub status: Option<u16>,
}

impl CallError {
    pub fn into_outcome(self) -> Outcome {
        if self.retryable {
            Outcome::Retry {
                error: self.message,
                after: self.retry_after,
            }
        } else {
            Outcome::Fail(self.message)
        }
    }
}

/// base URL, encrypted credential, secretRef, timeout.
type EndpointRow = (String, Option<Vec<u8>>, Option<String>, i32);

/// The tenant's enabled `medusa` endpoint (its stored secret, else the env variable its
/// `secretRef` names), else `MEDUSA_BASE_URL` / `MEDUSA_API_KEY`.
pub async fn target_for(
    ix: &Integrations,
    tenant: Option<Uuid>,
) -> Result<Option<MedusaTarget>, sqlx::Error> {
    if let Some(tenant) = tenant {
        let mut tx = begin(&ix.pool, &DbScope::system()).await?;
        let row: Option<EndpointRow> = sqlx::query_as(
            "SELECT base_url, auth_secret_enc, secret_ref, timeout_ms FROM integration_endpoints
              WHERE tenant_id = $1 AND system_type = 'medusa' AND enabled
              ORDER BY store_id NULLS FIRST LIMIT 1",
        )
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some((base_url, secret, secret_ref, timeout_ms)) = row {
            let api_key = secret
                .and_then(|s| ix.cipher.decrypt(&s))
                .or_else(|| secret_ref.and_then(|name| std::env::var(name).ok()));
            return Ok(Some(MedusaTarget {
                base_url: base_url.trim_end_matches('/').to_string(),
                api_key,
                timeout: Some(Duration::from_millis(timeout_ms.max(100) as u64)),
            }));
        }
    }
    Ok(ix.config.medusa.base_url.as_ref().map(|base| MedusaTarget {
        base_url: base.clone(),
        api_key: ix.config.medusa.api_key.as_ref().map(|k| k.expose().to_string()),
        timeout: None,
    }))
}

impl MedusaTarget {
    fn request(&self, ix: &Integrations, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = ix.http.request(method, format!("{}{path}", self.base_url));
        if let Some(key) = &self.api_key {
            req = req.header(
                reqwest::header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(format!("{key}:"))),
            );
        }
        if let Some(t) = self.timeout {
            req = req.timeout(t.min(Duration::from_millis(ix.config.jobs.http_timeout_ms)));
        }
        req
    }

    /// `POST /admin/products/{id}` (Medusa updates with POST); `metadata` is merged there.
    pub async fn update_product(
        &self,
        ix: &Integrations,
        id: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> Result<Value, CallError> {
        let path = format!(
            "/admin/products/{}?fields=id,title,handle,metadata,updated_at",
            urlencode(id)
        );
        let req = self
            .request(ix, reqwest::Method::POST, &path)
            .header("Idempotency-Key", idempotency_key)
            .json(body);
        send(req).await
    }

    /// `GET /admin/products/{id}`.
    pub async fn get_product(&self, ix: &Integrations, id: &str) -> Result<Value, CallError> {
        let path = format!(
            "/admin/products/{}?fields=id,title,handle,metadata,updated_at,variants.id",
            urlencode(id)
        );
        send(self.request(ix, reqwest::Method::GET, &path)).await
    }

    /// Every product (paged by 50), with the fields reconciliation compares.
    pub async fn list_products(&self, ix: &Integrations) -> Result<Vec<Value>, CallError> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let path = format!(
                "/admin/products?limit=50&offset={offset}&order=-updated_at&fields=id,handle,metadata,updated_at"
            );
            let page = send(self.request(ix, reqwest::Method::GET, &path)).await?;
            let products = page
                .get("products")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let count = page.get("count").and_then(Value::as_u64).unwrap_or(0);
            let n = products.len();
            out.extend(products);
            offset += n;
            if n == 0 || offset as u64 >= count || offset > 100_000 {
                return Ok(out);
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Sends and classifies.
async fn send(req: reqwest::RequestBuilder) -> Result<Value, CallError> {
    let res = req.send().await.map_err(|e| CallError {
        retryable: true,
        message: if e.is_timeout() {
            "Medusa did not answer in time (timeout)".to_string()
        } else {
            format!("cannot reach Medusa: {}", without_url(&e))
        },
        retry_after: None,
        status: None,
    })?;
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(3600)));
    let text = res.text().await.map_err(|e| CallError {
        retryable: true,
        message: format!("Medusa answer was cut short: {}", without_url(&e)),
        retry_after: None,
        status: Some(status),
    })?;
    if (200..300).contains(&status) {
        return serde_json::from_str(&text).map_err(|_| CallError {
            retryable: false,
            message: format!(
                "Medusa answered {status} with a body that is not JSON: {}",
                truncate(&text, 4096)
            ),
            retry_after: None,
            status: Some(status),
        });
    }
    let retryable = matches!(status, 409 | 429) || status >= 500;
    Err(CallError {
        retryable,
        message: format!("Medusa answered {status}: {}", truncate(&text, 4096)),
        retry_after,
        status: Some(status),
    })
}

/// reqwest errors name the URL; ours may carry ids but never credentials (they are headers).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<medusa>");
    }
    s
}
