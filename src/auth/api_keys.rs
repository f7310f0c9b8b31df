//! API keys: `dck_<12 hex id>_<64 hex secret>` (256-bit secret), shown once at creation. Only
//! the HMAC-SHA256 of the whole key (keyed with `API_KEY_HASH_SALT`) is stored; a key is looked
//! up by its public prefix and compared in constant time. Every request re-reads the key's row,
//! so revocation and expiry act at once on every instance; usage is recorded in memory and
//! written in batches (`lastUsedAt`, `usageCount`), at most once per interval per key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::Mac;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::principal::ApiKeyPrincipal;

/// A freshly generated key: the plaintext (returned once), its prefix and stored hash.
pub struct NewKey {
    pub plaintext: String,
    pub prefix: String,
    pub hash_hex: String,
}

pub fn generate(salt: &str) -> NewKey {
    let prefix = format!("dck_{}", crate::util::random_hex(6));
    let plaintext = format!("{prefix}_{}", crate::util::random_hex(32));
    let hash_hex = hex::encode(mac(salt, &plaintext));
    NewKey {
        plaintext,
        prefix,
        hash_hex,
    }
}

fn mac(salt: &str, key: &str) -> Vec<u8> {
    let mut m = crate::util::hmac_sha256(salt.as_bytes());
    m.update(key.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The public prefix of a well-formed key.
fn prefix_of(key: &str) -> Option<&str> {
    let b = key.as_bytes();
    let well_formed = b.len() == 4 + 12 + 1 + 64
        && key.starts_with("dck_")
        && b[16] == b'_'
        && key[4..16]
            .bytes()
            .chain(key[17..].bytes())
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    well_formed.then(|| &key[..16])
}

/// Why a presented key was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    Invalid,
    Revoked,
    Expired,
}

/// The stored facts of a key (what authentication needs), cacheable per instance.
#[derive(sqlx::FromRow, Clone, Debug)]
pub struct KeyRecord {
    id: Uuid,
    key_hash: String,
    tenant_id: Option<Uuid>,
    scopes: Vec<String>,
    status: String,
    expires_at: Option<OffsetDateTime>,
    owner_type: String,
    owner_ref: String,
}

/// The public prefix of a presented key, when it is well formed.
pub fn presented_prefix(key: &str) -> Option<&str> {
    prefix_of(key.trim())
}

/// Loads the record of a prefix.
pub async fn load(pool: &PgPool, prefix: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, key_hash, tenant_id, scopes, status, expires_at, owner_type, owner_ref
         FROM api_keys WHERE prefix = $1",
    )
    .bind(prefix)
    .fetch_optional(pool)
    .await
}

/// Checks a presented key against its record (or against nothing, in the same time).
pub fn check(record: Option<&KeyRecord>, salt: &str, key: &str) -> Result<ApiKeyPrincipal, KeyRefusal> {
    let key = key.trim();
    // Compare against the stored hash, or a dummy one, so timing does not tell which part was wrong.
    let stored = record
        .and_then(|r| hex::decode(r.key_hash.trim()).ok())
        .unwrap_or_else(|| vec![0u8; 32]);
    let mut verifier = crate::util::hmac_sha256(salt.as_bytes());
    verifier.update(key.as_bytes());
    let matches = verifier.verify_slice(&stored).is_ok();
    let Some(row) = record.filter(|_| matches) else {
        return Err(KeyRefusal::Invalid);
    };
    if row.status == "revoked" {
        return Err(KeyRefusal::Revoked);
    }
    if row.status == "expired" || row.expires_at.is_some_and(|e| e <= OffsetDateTime::now_utc()) {
        return Err(KeyRefusal::Expired);
    }
    Ok(ApiKeyPrincipal {
        id: row.id,
        prefix: key[..16].to_string(),
        tenant_id: row.tenant_id,
        scopes: row.scopes.clone(),
        owner_user: (row.owner_type == "user")
            .then(|| Uuid::parse_str(&row.owner_ref).ok())
            .flatten(),
    })
}

/// Usage counters kept in memory and flushed in batches.
#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<Uuid, (i64, OffsetDateTime)>>,
}

impl UsageRecorder {
    pub fn new() -> Arc<UsageRecorder> {
        Arc::new(UsageRecorder::default())
    }

    pub fn record(&self, key: Uuid) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(key).or_insert((0, OffsetDateTime::now_utc()));
        entry.0 += 1;
        entry.1 = OffsetDateTime::now_utc();
    }

    /// Writes the pending counters (one statement for all keys).
    pub async fn flush(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let batch: Vec<(Uuid, (i64, OffsetDateTime))> = {
            let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            map.drain().collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        let counts: Vec<i64> = batch.iter().map(|(_, (n, _))| *n).collect();
        let times: Vec<OffsetDateTime> = batch.iter().map(|(_, (_, t))| *t).collect();
        sqlx::query(
            "UPDATE api_keys k SET usage_count = k.usage_count + u.n, last_used_at = GREATEST(k.last_used_at, u.t)
             FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS u(id, n, t)
             WHERE k.id = u.id",
        )
        .bind(ids)
        .bind(counts)
        .bind(times)
        .execute(pool)
        .await?;
        Ok(())
    }

    pub fn spawn_flush(self: &Arc<Self>, pool: PgPool, every: Duration) -> tokio::task::JoinHandle<()> {
        let recorder = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if pool.is_closed() {
                    return;
                }
                if let Err(e) = recorder.flush(&pool).await {
                    tracing::warn!(error = %e, "api key usage flush failed");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = generate("salt");
        assert_eq!(k.plaintext.len(), 81);
        assert_eq!(prefix_of(&k.plaintext), Some(k.prefix.as_str()));
        assert_eq!(k.hash_hex, hex::encode(mac("salt", &k.plaintext)));
        assert_ne!(k.hash_hex, hex::encode(mac("other-salt", &k.plaintext)));
        assert_eq!(prefix_of("dck_short"), None);
        assert_eq!(prefix_of(&k.plaintext.to_uppercase()), None);
    }
}
