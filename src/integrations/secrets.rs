//! The secrets that may verify an inbound delivery, kept per instance so the hot path costs no
//! query and no decryption.
//!
//! Per source, the enabled integration endpoints with a webhook secret are loaded (and
//! decrypted) once and dropped on `NOTIFY cityos_integrations` (migration 0016) or at once when
//! this instance writes an endpoint; tenant hints (uuid or handle) resolve through a second cache
//! dropped on `NOTIFY cityos_context`. Both are bypassed while their listener is down.
//!
//! A cache can lag a change made elsewhere by the NOTIFY's latency. Two rules keep that
//! harmless: a refusal with cached secrets is decided again from the table before it is final
//! (a secret added or rotated elsewhere), and an acceptance with cached secrets is confirmed by
//! the statement that logs it (`cityos_accept_webhook`'s `p_confirm`), so a removed or expired
//! secret is never accepted.
//!
//! "Again from the table" means: from a read that began after the delivery arrived, which sees
//! every change committed before it. Such reads are shared: one read per source at a time, and
//! every refusal that arrived before a read began takes its result. A flood of forged deliveries
//! then costs a read per read's duration, not one per delivery.

use std::sync::Arc;
use std::time::Instant;

use time::OffsetDateTime;
use uuid::Uuid;

use super::webhooks::Source;
use crate::config::Config;
use crate::crypto::FieldCipher;
use crate::db::scope::{begin, DbScope};
use crate::notify::{Listeners, NotifiedCache};

/// One endpoint's webhook secrets, decrypted, with the stored (encrypted) values the logging
/// statement compares against.
#[derive(Debug)]
pub struct EndpointSecret {
    pub id: Uuid,
    pub tenant: Uuid,
    pub store: Option<Uuid>,
    secret: Arc<str>,
    enc: Vec<u8>,
    /// The replaced secret during its grace period, and when that ends.
    previous: Option<(Arc<str>, Vec<u8>, OffsetDateTime)>,
}

/// A secret that may verify a delivery, and the endpoint it belongs to (none for env secrets).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub secret: Arc<str>,
    pub endpoint: Option<Arc<EndpointSecret>>,
    /// The endpoint's previous secret (rotation grace period) rather than its current one.
    pub previous: bool,
}

impl Candidate {
    /// The stored form of this secret, for the logging statement's confirmation.
    pub fn stored(&self) -> Option<&[u8]> {
        let e = self.endpoint.as_ref()?;
        if self.previous {
            e.previous.as_ref().map(|(_, enc, _)| enc.as_slice())
        } else {
            Some(e.enc.as_slice())
        }
    }
}

/// The secrets for one delivery and the tenant its hint names.
#[derive(Debug)]
pub struct Candidates {
    pub tenant: Option<Uuid>,
    pub list: Vec<Candidate>,
    /// The endpoint secrets came from the cache (an acceptance must be confirmed).
    pub cached: bool,
}

type Endpoints = Arc<Vec<Arc<EndpointSecret>>>;

/// How [`SecretDirectory::candidates`] reads the endpoint secrets.
#[derive(Debug, Clone, Copy)]
pub enum Read {
    /// From the cache when it holds them.
    Cached,
    /// From a read of the table that began after this instant (a delivery's arrival), perhaps
    /// one that another delivery started: what decides a refusal.
    After(Instant),
    /// From a read of this call's own (after the logging statement found a cached secret stale).
    Own,
}

pub struct SecretDirectory {
    endpoints: Arc<NotifiedCache<Endpoints>>,
    /// Per source: the latest read from the table and when it began (one read at a time).
    fresh: [tokio::sync::Mutex<Option<(Instant, Endpoints)>>; 3],
    tenants: Arc<NotifiedCache<Uuid>>,
    /// Env secrets per source, parsed once: a comma list (several Fleetbase credentials, or old
    /// and new during a rotation).
    env: [Vec<Arc<str>>; 3],
}

fn index(source: Source) -> usize {
    match source {
        Source::Medusa => 0,
        Source::Fleetbase => 1,
        Source::Erpnext => 2,
    }
}

type EndpointRow = (
    Uuid,
    Uuid,
    Option<Uuid>,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<OffsetDateTime>,
);

impl SecretDirectory {
    pub fn new(config: &Config) -> SecretDirectory {
        let env = |s: &Option<crate::config::Secret>| -> Vec<Arc<str>> {
            s.as_ref()
                .map(|s| {
                    s.expose()
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(Arc::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        SecretDirectory {
            endpoints: NotifiedCache::new(16),
            fresh: Default::default(),
            tenants: NotifiedCache::new(10_000),
            env: [
                env(&config.medusa.webhook_secret),
                env(&config.fleetbase.webhook_secret),
                env(&config.erpnext.webhook_secret),
            ],
        }
    }

    /// Subscribes both caches to the instance's LISTEN connection (before it starts).
    pub fn listen(&self, listeners: &Listeners) {
        self.endpoints.listen(listeners, "cityos_integrations");
        self.tenants.listen(listeners, "cityos_context");
    }

    /// A LISTEN connection of their own, for an `Integrations` outside the app (tools, tests).
    pub fn spawn_invalidation(&self, pool: sqlx::PgPool) {
        let listeners = Listeners::new();
        self.listen(&listeners);
        listeners.start(pool);
    }

    /// This instance changed an endpoint: forget the secrets now (others hear the NOTIFY).
    pub fn clear_endpoints(&self) {
        self.endpoints.clear();
    }

    /// This instance changed a tenant (its handle): forget resolved hints now.
    pub fn clear_tenants(&self) {
        self.tenants.clear();
    }

    /// Secrets that may verify a delivery of `source` carrying tenant `hint`. With a known
    /// tenant that has its own endpoint secret, only that tenant's secrets count (the previous
    /// one during its grace period included); otherwise every endpoint secret of the source and
    /// the env secret(s), read as `read` says.
    pub async fn candidates(
        &self,
        pool: &sqlx::PgPool,
        cipher: &FieldCipher,
        source: Source,
        hint: Option<&str>,
        read: Read,
    ) -> Result<Candidates, sqlx::Error> {
        let tenant = match hint {
            Some(h) => self.tenant(pool, h).await?,
            None => None,
        };
        let (endpoints, was_cached) = match read {
            Read::Cached => match self.endpoints.get(source.as_str()) {
                Some(e) => (e, true),
                None => (self.load(pool, cipher, source).await?, false),
            },
            Read::After(after) => self.read_after(pool, cipher, source, Some(after)).await?,
            Read::Own => self.read_after(pool, cipher, source, None).await?,
        };
        let now = OffsetDateTime::now_utc();
        let mut list = Vec::new();
        for e in endpoints.iter() {
            if tenant.is_some_and(|t| t != e.tenant) {
                continue;
            }
            list.push(Candidate {
                secret: e.secret.clone(),
                endpoint: Some(e.clone()),
                previous: false,
            });
            if let Some((secret, _, expires)) = &e.previous {
                if *expires > now {
                    list.push(Candidate {
                        secret: secret.clone(),
                        endpoint: Some(e.clone()),
                        previous: true,
                    });
                }
            }
        }
        if tenant.is_none() || list.is_empty() {
            list.extend(self.env[index(source)].iter().map(|s| Candidate {
                secret: s.clone(),
                endpoint: None,
                previous: false,
            }));
        }
        Ok(Candidates {
            tenant,
            list,
            cached: was_cached,
        })
    }

    /// The tenant a hint (uuid or handle) names; only found tenants are cached, so a tenant
    /// created a moment ago resolves at once.
    async fn tenant(&self, pool: &sqlx::PgPool, hint: &str) -> Result<Option<Uuid>, sqlx::Error> {
        if let Some(id) = self.tenants.get(hint) {
            return Ok(Some(id));
        }
        let generation = self.tenants.generation();
        let mut tx = begin(pool, &DbScope::system()).await?;
        let id: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM tenants WHERE id::text = $1 OR handle = $1 LIMIT 1")
                .bind(hint)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        if let Some(id) = id {
            self.tenants.insert(hint.to_string(), id, generation);
        }
        Ok(id)
    }

    /// The endpoints from a read that began after `after` (`None`: a new read): the latest
    /// read when it did (then `true`: shared, so an acceptance from it is confirmed like one from
    /// the cache), else a new one. Reads of a source run one at a time, so the refusals waiting
    /// meanwhile share the next one.
    async fn read_after(
        &self,
        pool: &sqlx::PgPool,
        cipher: &FieldCipher,
        source: Source,
        after: Option<Instant>,
    ) -> Result<(Endpoints, bool), sqlx::Error> {
        let mut latest = self.fresh[index(source)].lock().await;
        if let (Some((began, endpoints)), Some(after)) = (latest.as_ref(), after) {
            if *began >= after {
                return Ok((endpoints.clone(), true));
            }
        }
        let began = Instant::now();
        let endpoints = self.load(pool, cipher, source).await?;
        *latest = Some((began, endpoints.clone()));
        Ok((endpoints, false))
    }

    /// Every enabled endpoint of the source with a webhook secret, decrypted (a secret that
    /// does not decrypt is left out, as if unset).
    async fn load(
        &self,
        pool: &sqlx::PgPool,
        cipher: &FieldCipher,
        source: Source,
    ) -> Result<Endpoints, sqlx::Error> {
        let generation = self.endpoints.generation();
        let mut tx = begin(pool, &DbScope::system()).await?;
        let rows: Vec<EndpointRow> = sqlx::query_as(
            "SELECT id, tenant_id, store_id, webhook_secret_enc, previous_webhook_secret_enc,
                    previous_webhook_secret_expires_at
               FROM integration_endpoints
              WHERE system_type = $1 AND enabled AND webhook_secret_enc IS NOT NULL
              ORDER BY tenant_id, store_id NULLS FIRST
              LIMIT 1000",
        )
        .bind(source.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let endpoints: Endpoints = Arc::new(
            rows.into_iter()
                .filter_map(|(id, tenant, store, enc, prev_enc, prev_expires)| {
                    let secret = Arc::from(cipher.decrypt(&enc)?);
                    let previous = match (prev_enc, prev_expires) {
                        (Some(p), Some(expires)) => cipher.decrypt(&p).map(|s| (Arc::from(s), p, expires)),
                        _ => None,
                    };
                    Some(Arc::new(EndpointSecret {
                        id,
                        tenant,
                        store,
                        secret,
                        enc,
                        previous,
                    }))
                })
                .collect(),
        );
        self.endpoints
            .insert(source.as_str().to_string(), endpoints.clone(), generation);
        Ok(endpoints)
    }
}
