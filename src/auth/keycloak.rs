//! Keycloak access tokens verified against the realm's JWKS.
//!
//! Keys are cached in memory by `kid`; an unknown `kid` triggers one refetch (single-flight, at
//! most once per [`FORCED_REFRESH_INTERVAL`]), so a flood of bogus kids cannot hammer Keycloak; a
//! background task refreshes the set periodically and keeps the last good set when Keycloak is
//! unreachable. Only the asymmetric algorithm a key declares is accepted (RS256, PS256, ES256):
//! `none`, HS* and algorithm confusion fail before any signature check. No network call happens
//! on the request path while the token's key is cached.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::config::KeycloakConfig;

/// An unknown `kid` refetches the key set at most this often.
pub const FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// The token is not acceptable (message for the client).
    Invalid(String),
    /// No keys could be obtained from Keycloak to check it.
    KeysUnavailable,
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct RoleList {
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The claims of a Keycloak access token that the orchestrator uses.
#[derive(Debug, Deserialize, Clone)]
pub struct KeycloakClaims {
    pub sub: String,
    pub iss: String,
    pub exp: i64,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub realm_access: Option<RoleList>,
    #[serde(default)]
    pub resource_access: Option<HashMap<String, RoleList>>,
    /// Custom mapper: the tenant (id or handle) the token's membership roles apply to.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Group paths; `/tenants/<handle>/<role>` grants a membership role.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

impl KeycloakClaims {
    /// A display name from whatever profile claims the token has.
    pub fn display_name(&self) -> Option<String> {
        self.name
            .clone()
            .or_else(|| match (&self.given_name, &self.family_name) {
                (Some(g), Some(f)) => Some(format!("{g} {f}")),
                (Some(g), None) => Some(g.clone()),
                _ => self.preferred_username.clone(),
            })
    }
}

/// The claims of an ID token the code flow checks.
#[derive(Debug, Deserialize, Clone)]
pub struct IdTokenClaims {
    pub sub: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
}

#[derive(Clone)]
struct Key {
    decoding: DecodingKey,
    alg: Algorithm,
}

/// Verifies tokens of one issuer.
pub struct KeycloakVerifier {
    issuer: String,
    jwks_url: RwLock<Option<String>>,
    audience: Option<String>,
    client_id: Option<String>,
    leeway: u64,
    http: reqwest::Client,
    keys: RwLock<Arc<HashMap<String, Key>>>,
    /// Serialises fetches and remembers the last one forced by an unknown kid.
    fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Bumped on every successful fetch.
    generation: std::sync::atomic::AtomicU64,
    /// Tokens already verified, by SHA-256: a repeated token costs no signature check. Emptied
    /// whenever the key set is refetched (a removed key must stop working).
    verified: RwLock<HashMap<String, KeycloakClaims>>,
}

/// Upper bound of remembered verified tokens.
const MAX_VERIFIED: usize = 10_000;

impl KeycloakVerifier {
    /// `None` when no issuer is configured.
    pub fn from_config(cfg: &KeycloakConfig) -> Option<Arc<KeycloakVerifier>> {
        let issuer = cfg.issuer_url.clone()?;
        Some(Arc::new(KeycloakVerifier {
            issuer,
            jwks_url: RwLock::new(cfg.jwks_url.clone()),
            audience: cfg.audience.clone(),
            client_id: cfg.client_id.clone(),
            leeway: cfg.clock_tolerance_secs,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(Arc::new(HashMap::new())),
            fetch: tokio::sync::Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            verified: RwLock::new(HashMap::new()),
        }))
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether an (unverified) token claims to come from this issuer.
    pub fn claims_issuer(&self, token: &str) -> bool {
        unverified_payload(token)
            .and_then(|p| p.get("iss").and_then(Value::as_str).map(str::to_string))
            .is_some_and(|iss| iss == self.issuer)
    }

    fn cached(&self) -> Arc<HashMap<String, Key>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Verifies signature, algorithm, issuer, audience and times.
    pub async fn verify(&self, token: &str) -> Result<KeycloakClaims, TokenError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let fingerprint = crate::util::sha256_hex(token.as_bytes());
        if let Some(claims) = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fingerprint)
        {
            if claims.exp + self.leeway as i64 > now {
                return Ok(claims.clone());
            }
        }
        let claims = self.verify_fully(token).await?;
        let mut cache = self.verified.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_VERIFIED {
            cache.retain(|_, c| c.exp + self.leeway as i64 > now);
            if cache.len() >= MAX_VERIFIED {
                cache.clear();
            }
        }
        cache.insert(fingerprint, claims.clone());
        Ok(claims)
    }

    async fn verify_fully(&self, token: &str) -> Result<KeycloakClaims, TokenError> {
        let invalid = |m: &str| TokenError::Invalid(m.to_string());
        let claims: KeycloakClaims = self.decode_signed(token, self.audience.as_deref()).await?;
        if self.audience.is_none() {
            let ok = match (&self.client_id, &claims.azp) {
                (Some(client), Some(azp)) => client == azp,
                _ => false,
            };
            if !ok {
                return Err(invalid("The token was not issued to this client."));
            }
        }
        if claims.typ.as_deref().is_some_and(|t| t != "Bearer") {
            return Err(invalid("Only access tokens are accepted."));
        }
        Ok(claims)
    }

    /// Verifies the ID token of an authorization-code flow: the same keys, algorithms, issuer
    /// and times as an access token, its audience is `client_id`, its type `ID`, and its
    /// `nonce` the one the flow sent (a token from another sign-in is refused). Never cached:
    /// each flow checks its own.
    pub async fn verify_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<IdTokenClaims, TokenError> {
        let invalid = |m: &str| TokenError::Invalid(m.to_string());
        let claims: IdTokenClaims = self.decode_signed(token, Some(client_id)).await?;
        if claims.typ.as_deref() != Some("ID") {
            return Err(invalid("The token is not an ID token."));
        }
        if claims.azp.as_deref().is_some_and(|azp| azp != client_id) {
            return Err(invalid("The ID token was not issued to this client."));
        }
        if nonce.is_empty() || claims.nonce.as_deref() != Some(nonce) {
            return Err(invalid("The ID token's nonce does not match this sign-in."));
        }
        Ok(claims)
    }

    /// Signature (a key of the configured JWKS, the algorithm the key declares), issuer,
    /// audience when given, and times; the claims decoded as `T`.
    async fn decode_signed<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<T, TokenError> {
        let invalid = |m: &str| TokenError::Invalid(m.to_string());
        // Look at the declared algorithm first: `none` and HS* are refused by name.
        let declared = token
            .split('.')
            .next()
            .and_then(crate::util::base64url_decode)
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
            .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_string));
        match declared.as_deref() {
            Some("RS256" | "PS256" | "ES256") => {}
            Some(_) => return Err(invalid("The token's algorithm is not allowed.")),
            None => return Err(invalid("The token is malformed.")),
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("The token is malformed."))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256) {
            return Err(invalid("The token's algorithm is not allowed."));
        }
        let kid = header.kid.ok_or_else(|| invalid("The token has no key id."))?;
        let key = match self.cached().get(&kid).cloned() {
            Some(k) => k,
            None => {
                self.refresh_for_unknown_kid().await;
                let keys = self.cached();
                match keys.get(&kid) {
                    Some(k) => k.clone(),
                    None if keys.is_empty() => return Err(TokenError::KeysUnavailable),
                    None => return Err(invalid("The token's signing key is unknown.")),
                }
            }
        };
        if key.alg != header.alg {
            return Err(invalid("The token's algorithm does not match its key."));
        }
        let mut v = Validation::new(key.alg);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        match audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<T>(token, &key.decoding, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            invalid(match e.kind() {
                K::ExpiredSignature => "The token has expired.",
                K::ImmatureSignature => "The token is not valid yet.",
                K::InvalidIssuer => "The token's issuer is not accepted.",
                K::InvalidAudience => "The token's audience is not accepted.",
                K::InvalidSignature => "The token's signature is invalid.",
                _ => "The token is invalid.",
            })
        })?;
        Ok(data.claims)
    }

    /// One refetch for an unknown kid, shared by concurrent callers and rate limited.
    async fn refresh_for_unknown_kid(&self) {
        use std::sync::atomic::Ordering;
        let before = self.generation.load(Ordering::Acquire);
        let mut last = self.fetch.lock().await;
        // Another caller fetched while we waited: use its result.
        if self.generation.load(Ordering::Acquire) != before {
            return;
        }
        if last.is_some_and(|t| t.elapsed() < FORCED_REFRESH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.fetch_keys().await {
            tracing::warn!(issuer = %self.issuer, error = %e, "JWKS refresh failed; keeping the cached keys");
        }
    }

    /// Fetches the key set (discovering the JWKS URL first when needed) and replaces the cache.
    pub async fn fetch_keys(&self) -> Result<usize, String> {
        let url = self.jwks_url().await?;
        let body: Value = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("cannot fetch {url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("bad JWKS from {url}: {e}"))?;
        let keys = parse_jwks(&body);
        if keys.is_empty() {
            return Err(format!("no usable signing keys at {url}"));
        }
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        self.verified.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(n)
    }

    async fn jwks_url(&self) -> Result<String, String> {
        if let Some(u) = self.jwks_url.read().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(u);
        }
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer);
        let doc: Value = self
            .http
            .get(&discovery)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("cannot fetch {discovery}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("bad discovery document: {e}"))?;
        let url = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("discovery document has no jwks_uri")?
            .to_string();
        *self.jwks_url.write().unwrap_or_else(|e| e.into_inner()) = Some(url.clone());
        Ok(url)
    }

    /// Refreshes the keys periodically; the first fetch happens at once.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let verifier = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let _guard = verifier.fetch.lock().await;
                if let Err(e) = verifier.fetch_keys().await {
                    tracing::warn!(issuer = %verifier.issuer, error = %e, "JWKS refresh failed; keeping the cached keys");
                }
            }
        })
    }
}

/// Signing keys of a JWKS: `use` absent or `sig`, RSA (RS256/PS256) or EC P-256 (ES256).
fn parse_jwks(body: &Value) -> HashMap<String, Key> {
    let mut out = HashMap::new();
    for jwk in body.get("keys").and_then(Value::as_array).into_iter().flatten() {
        let s = |k: &str| jwk.get(k).and_then(Value::as_str);
        if s("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let Some(kid) = s("kid") else { continue };
        let key = match (s("kty"), s("alg")) {
            (Some("RSA"), alg) => {
                let alg = match alg {
                    None | Some("RS256") => Algorithm::RS256,
                    Some("PS256") => Algorithm::PS256,
                    _ => continue,
                };
                match (s("n"), s("e")) {
                    (Some(n), Some(e)) => DecodingKey::from_rsa_components(n, e)
                        .ok()
                        .map(|d| Key { decoding: d, alg }),
                    _ => None,
                }
            }
            (Some("EC"), None | Some("ES256")) if s("crv") == Some("P-256") => match (s("x"), s("y")) {
                (Some(x), Some(y)) => DecodingKey::from_ec_components(x, y).ok().map(|d| Key {
                    decoding: d,
                    alg: Algorithm::ES256,
                }),
                _ => None,
            },
            _ => None,
        };
        if let Some(k) = key {
            out.insert(kid.to_string(), k);
        }
    }
    out
}

/// Whether a token's header declares HS256 (Payload's local tokens).
pub fn is_hs256(token: &str) -> bool {
    token
        .split('.')
        .next()
        .and_then(crate::util::base64url_decode)
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .is_some_and(|h| h.get("alg").and_then(Value::as_str) == Some("HS256"))
}

/// The payload of a JWT without verifying it (only to route it to the right verifier).
pub fn unverified_payload(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = crate::util::base64url_decode(payload)?;
    serde_json::from_slice(&bytes).ok()
}

/// Keycloak role names → CityOS roles. Defaults: `-` becomes `_` and only the data model's role
/// names are kept; `KEYCLOAK_ROLE_MAP` (`kc-role=cityos_role,…`) adds or overrides entries.
/// Unknown roles are dropped, never elevated.
#[derive(Debug, Clone, Default)]
pub struct RoleMap {
    explicit: HashMap<String, String>,
}

pub use crate::auth::principal::{GLOBAL_ROLES, MEMBERSHIP_ROLES};

impl RoleMap {
    pub fn parse(spec: Option<&str>) -> Result<RoleMap, String> {
        let mut explicit = HashMap::new();
        for pair in spec
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (from, to) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not role=cityos_role"))?;
            let to = to.trim();
            if !GLOBAL_ROLES.contains(&to) && !MEMBERSHIP_ROLES.contains(&to) {
                return Err(format!("{to:?} is not a CityOS role"));
            }
            explicit.insert(from.trim().to_string(), to.to_string());
        }
        Ok(RoleMap { explicit })
    }

    pub fn map(&self, keycloak_role: &str) -> Option<&'static str> {
        let name = self
            .explicit
            .get(keycloak_role)
            .map(String::as_str)
            .unwrap_or(keycloak_role);
        let normalised = name.replace('-', "_");
        GLOBAL_ROLES
            .iter()
            .chain(MEMBERSHIP_ROLES)
            .find(|r| **r == normalised)
            .copied()
    }

    /// (global roles, membership roles) of a token: realm roles and the client's roles.
    pub fn roles_of(&self, claims: &KeycloakClaims, client_id: Option<&str>) -> (Vec<String>, Vec<String>) {
        let mut names: Vec<&str> = claims
            .realm_access
            .iter()
            .flat_map(|r| r.roles.iter().map(String::as_str))
            .collect();
        if let (Some(client), Some(access)) = (client_id, &claims.resource_access) {
            if let Some(r) = access.get(client) {
                names.extend(r.roles.iter().map(String::as_str));
            }
        }
        let mut global = Vec::new();
        let mut membership = Vec::new();
        for n in names {
            if let Some(role) = self.map(n) {
                let list = if GLOBAL_ROLES.contains(&role) {
                    &mut global
                } else {
                    &mut membership
                };
                if !list.iter().any(|r: &String| r == role) {
                    list.push(role.to_string());
                }
            }
        }
        (global, membership)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_mapping_defaults_and_overrides() {
        let m = RoleMap::parse(Some("cms-admin=super_admin, editor=content_editor")).unwrap();
        assert_eq!(m.map("tenant-admin"), Some("tenant_admin"));
        assert_eq!(m.map("cms-admin"), Some("super_admin"));
        assert_eq!(m.map("editor"), Some("content_editor"));
        assert_eq!(m.map("offline_access"), None);
        assert_eq!(m.map("default-roles-cms"), None);
        assert!(RoleMap::parse(Some("x=god_mode")).is_err());
        let claims: KeycloakClaims = serde_json::from_value(serde_json::json!({
            "sub": "s", "iss": "i", "exp": 1,
            "realm_access": {"roles": ["default-roles-cms", "super-admin", "user"]},
            "resource_access": {"cms-orchestrator": {"roles": ["tenant_admin", "editor"]}, "other": {"roles": ["viewer"]}}
        }))
        .unwrap();
        let (g, t) = m.roles_of(&claims, Some("cms-orchestrator"));
        assert_eq!(g, vec!["super_admin"]);
        assert_eq!(t, vec!["tenant_admin", "content_editor"]);
    }

    #[test]
    fn jwks_keeps_only_signing_keys() {
        let body = serde_json::json!({"keys": [
            {"kid": "a", "kty": "RSA", "alg": "RS256", "use": "sig", "n": "sXch", "e": "AQAB"},
            {"kid": "b", "kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "n": "sXch", "e": "AQAB"},
            {"kid": "c", "kty": "oct", "k": "c2VjcmV0"}
        ]});
        let keys = parse_jwks(&body);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys["a"].alg, Algorithm::RS256);
    }
}
