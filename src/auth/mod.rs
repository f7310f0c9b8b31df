//! Who is calling: local login (argon2id + Payload-compatible HS256 JWTs, revocable sessions)
//! and the principal every access decision takes.

pub mod api_keys;
pub mod keycloak;
pub mod password;
pub mod principal;
pub mod routes;

use axum::http::{header, HeaderMap};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::AppState;
use crate::config::Config;
use crate::http::error::ApiError;
use crate::http::extract::cookie;
use principal::{Membership, Principal, UserPrincipal};

/// Lifetime of a local-login token (Payload's `tokenExpiration` default).
pub const TOKEN_SECONDS: i64 = 7200;
pub const COOKIE_NAME: &str = "payload-token";

/// Keys derived from `PAYLOAD_SECRET`.
pub struct AuthKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub secure_cookies: bool,
}

impl AuthKeys {
    /// Payload's derivation: the first 32 characters of the hex SHA-256 of the secret, as bytes.
    pub fn new(config: &Config) -> AuthKeys {
        let digest = crate::util::sha256_hex(config.secrets.payload_secret.expose().as_bytes());
        let key = &digest.as_bytes()[..32];
        AuthKeys {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            // `Secure` in production and whenever the public URL is https.
            secure_cookies: config.env.is_production() || config.app_url.starts_with("https://"),
        }
    }

    pub fn mint(&self, claims: &Claims) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    /// Verifies signature and expiry; any failure means "no credential".
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }
}

#[derive(Deserialize)]
struct MembershipRow {
    tenant_id: Uuid,
    store_id: Option<Uuid>,
    roles: Vec<String>,
}

/// The claims Payload puts in a local-login token.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct Claims {
    pub id: String,
    pub collection: String,
    pub email: String,
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
}

/// The bearer token of a request: `JWT …`, `Bearer …`, then the `payload-token` cookie.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    presented_token_with_scheme(headers).map(|(t, _)| t)
}

/// The token and whether it came as `Authorization: Bearer` (the scheme Keycloak clients use).
fn presented_token_with_scheme(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = auth.strip_prefix("JWT ") {
            return Some((t.trim().to_string(), false));
        }
        if let Some(t) = auth.strip_prefix("Bearer ") {
            return Some((t.trim().to_string(), true));
        }
    }
    // The cookie counts only when the request is not cross-site (CSRF).
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s == "cross-site");
    if cross_site {
        return None;
    }
    cookie(headers, COOKIE_NAME).map(|t| (t, false))
}

/// An API key presented as `Authorization: api-keys API-Key <key>` or `X-API-Key: <key>`.
pub fn presented_api_key(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some((slug, key)) = auth.split_once(" API-Key ") {
            if slug.trim() == "api-keys" || slug.trim() == "users" {
                return Some(key.trim().to_string());
            }
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| k.trim().to_string())
}

/// Resolves the caller. A local JWT that fails verification means anonymous (Payload's rule);
/// an API key that fails is refused with 401, since no Payload client sends a stale one.
pub async fn principal_from_headers(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(key) = presented_api_key(headers) {
        let salt = state.config.secrets.api_key_hash_salt.expose();
        let record = match api_keys::presented_prefix(&key) {
            None => None,
            Some(prefix) => {
                let cache_key = format!("key:{prefix}");
                match state.principals.get(&cache_key) {
                    Some(CachedAuth::Key(r)) => Some(r),
                    _ => {
                        let generation = state.principals.generation();
                        let r = api_keys::load(&state.pool, prefix).await?;
                        if let Some(r) = &r {
                            state
                                .principals
                                .insert(cache_key, CachedAuth::Key(r.clone()), generation);
                        }
                        r
                    }
                }
            }
        };
        return match api_keys::check(record.as_ref(), salt, &key) {
            Ok(principal) => {
                state.key_usage.record(principal.id);
                Ok(Principal::ApiKey(principal))
            }
            Err(api_keys::KeyRefusal::Invalid) => Err(ApiError::Unauthorized("Invalid API key.".into())),
            Err(api_keys::KeyRefusal::Revoked) => {
                Err(ApiError::Unauthorized("This API key has been revoked.".into()))
            }
            Err(api_keys::KeyRefusal::Expired) => {
                Err(ApiError::Unauthorized("This API key has expired.".into()))
            }
        };
    }
    let Some((token, bearer)) = presented_token_with_scheme(headers) else {
        return Ok(Principal::Anonymous);
    };
    if let Some(kc) = &state.keycloak {
        // A token naming our issuer, or a Bearer token that is not one of Payload's own (HS256),
        // is verified as a Keycloak token (against our configured JWKS only, never a URL the
        // token names): a foreign or forged one is refused with 401. `JWT …` and the cookie keep
        // Payload's rule that a bad token is simply anonymous.
        if kc.claims_issuer(&token) || (bearer && !keycloak::is_hs256(&token)) {
            return keycloak_principal(state, kc, &token).await.map(Principal::User);
        }
    }
    let Some(claims) = state.auth.verify(&token) else {
        return Ok(Principal::Anonymous);
    };
    let (Ok(user_id), Ok(sid)) = (Uuid::parse_str(&claims.id), Uuid::parse_str(&claims.sid)) else {
        return Ok(Principal::Anonymous);
    };
    let cache_key = format!("sid:{sid}");
    if let Some(CachedAuth::Session { user, expires_at }) = state.principals.get(&cache_key) {
        if user.id == user_id && expires_at > time::OffsetDateTime::now_utc() {
            let mut u = user;
            u.token = Some((token, claims.exp));
            return Ok(Principal::User(u));
        }
    }
    let generation = state.principals.generation();
    Ok(match load_user_with_session(state, user_id, Some(sid)).await? {
        Some((mut u, expires_at)) => {
            if let Some(expires_at) = expires_at {
                state.principals.insert(
                    cache_key,
                    CachedAuth::Session {
                        user: u.clone(),
                        expires_at,
                    },
                    generation,
                );
            }
            u.token = Some((token, claims.exp));
            Principal::User(u)
        }
        None => Principal::Anonymous,
    })
}

/// Loads an active user (and, for a session token, checks the session is live).
pub async fn load_user(
    state: &AppState,
    id: Uuid,
    sid: Option<Uuid>,
) -> Result<Option<UserPrincipal>, ApiError> {
    Ok(load_user_with_session(state, id, sid).await?.map(|(u, _)| u))
}

/// As [`load_user`], with the session's expiry.
async fn load_user_with_session(
    state: &AppState,
    id: Uuid,
    sid: Option<Uuid>,
) -> Result<Option<(UserPrincipal, Option<time::OffsetDateTime>)>, ApiError> {
    // One round trip: the user, the live session check and the active memberships.
    type Row = (
        String,
        Option<String>,
        Vec<String>,
        sqlx::types::Json<Vec<MembershipRow>>,
        Option<time::OffsetDateTime>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT u.email, u.name, u.global_roles,
                COALESCE((SELECT json_agg(json_build_object('tenant_id', m.tenant_id, 'store_id', m.store_id, 'roles', m.roles))
                          FROM user_tenant_memberships m WHERE m.user_id = u.id AND m.status = 'active'), '[]'::json),
                (SELECT s.expires_at FROM user_sessions s WHERE s.id = $2)
         FROM users u
         WHERE u.id = $1 AND u.status = 'active'
           AND ($2::uuid IS NULL OR EXISTS (
                SELECT 1 FROM user_sessions s
                WHERE s.id = $2 AND s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > now()))",
    )
    .bind(id)
    .bind(sid)
    .fetch_optional(&state.pool)
    .await?;
    let Some((email, name, global_roles, sqlx::types::Json(memberships), session_expires)) = row else {
        return Ok(None);
    };
    Ok(Some((
        UserPrincipal {
            id,
            email,
            name: name.filter(|n| !n.trim().is_empty()),
            global_roles,
            memberships: memberships
                .into_iter()
                .map(|m| Membership {
                    tenant_id: m.tenant_id,
                    store_id: m.store_id,
                    roles: m.roles,
                })
                .collect(),
            session_id: sid,
            strategy: "local-jwt",
            token: None,
        },
        session_expires,
    )))
}

/// A Keycloak token → the same principal as a local login: the user row is created on first
/// sight (just in time) and kept in step with the token's profile; roles come from the token
/// (mapped), memberships from the database merged with the token's tenant claim.
async fn keycloak_principal(
    state: &AppState,
    kc: &keycloak::KeycloakVerifier,
    token: &str,
) -> Result<UserPrincipal, ApiError> {
    let claims = kc.verify(token).await.map_err(|e| match e {
        keycloak::TokenError::Invalid(m) => ApiError::InvalidToken(m),
        keycloak::TokenError::KeysUnavailable => ApiError::Unavailable(
            "The identity provider's signing keys are unavailable; try again shortly.".into(),
        ),
    })?;
    let id = jit_user(state, &claims).await?;
    let cache_key = format!("user:{id}");
    let cached = match state.principals.get(&cache_key) {
        Some(CachedAuth::User(u)) => Some(u),
        _ => None,
    };
    let mut user = match cached {
        Some(u) => u,
        None => {
            let generation = state.principals.generation();
            let Some(u) = load_user(state, id, None).await? else {
                return Err(ApiError::InvalidToken("This account is disabled.".into()));
            };
            state
                .principals
                .insert(cache_key, CachedAuth::User(u.clone()), generation);
            u
        }
    };
    let (global, membership_roles) = state
        .role_map
        .roles_of(&claims, state.config.keycloak.client_id.as_deref());
    for r in global {
        if !user.global_roles.contains(&r) {
            user.global_roles.push(r);
        }
    }
    for tenant in token_tenants(state, &claims, &membership_roles).await? {
        match user
            .memberships
            .iter_mut()
            .find(|m| m.tenant_id == tenant.0 && m.store_id.is_none())
        {
            Some(m) => {
                for r in tenant.1 {
                    if !m.roles.contains(&r) {
                        m.roles.push(r);
                    }
                }
            }
            None => user.memberships.push(Membership {
                tenant_id: tenant.0,
                store_id: None,
                roles: tenant.1,
            }),
        }
    }
    user.strategy = "keycloak";
    user.token = Some((token.to_string(), claims.exp));
    Ok(user)
}

/// Memberships a token grants: the membership roles apply to the `tenant_id` claim's tenant (an
/// id or a handle); groups `/tenants/<handle>/<role>` grant single roles.
async fn token_tenants(
    state: &AppState,
    claims: &keycloak::KeycloakClaims,
    roles: &[String],
) -> Result<Vec<(Uuid, Vec<String>)>, ApiError> {
    let mut out: Vec<(Uuid, Vec<String>)> = Vec::new();
    let resolve = |handle_or_id: String| async move {
        if let Ok(id) = Uuid::parse_str(&handle_or_id) {
            return Ok::<_, ApiError>(Some(id));
        }
        Ok(state
            .tenants
            .by_handle(&state.pool, &handle_or_id)
            .await?
            .map(|t| t.id))
    };
    if let (Some(t), false) = (&claims.tenant_id, roles.is_empty()) {
        if let Some(id) = resolve(t.clone()).await? {
            out.push((id, roles.to_vec()));
        }
    }
    for group in claims.groups.iter().flatten() {
        let parts: Vec<&str> = group.trim_start_matches('/').split('/').collect();
        if let ["tenants", handle, role] = parts.as_slice() {
            let Some(role) = state.role_map.map(role) else {
                continue;
            };
            if keycloak::GLOBAL_ROLES.contains(&role) {
                continue;
            }
            if let Some(id) = resolve(handle.to_string()).await? {
                match out.iter_mut().find(|(t, _)| *t == id) {
                    Some((_, rs)) if !rs.iter().any(|r| r == role) => rs.push(role.to_string()),
                    Some(_) => {}
                    None => out.push((id, vec![role.to_string()])),
                }
            }
        }
    }
    Ok(out)
}

/// The user row of a Keycloak subject, created on first sight. Concurrent first requests
/// race on the unique (provider, subject) and all get the one row; later tokens update a
/// changed email or name, and an unchanged profile costs no write.
async fn jit_user(state: &AppState, claims: &keycloak::KeycloakClaims) -> Result<Uuid, ApiError> {
    let email = claims
        .email
        .clone()
        .map(|e| e.trim().to_lowercase())
        .unwrap_or_else(|| format!("{}@keycloak.invalid", claims.sub.to_lowercase()));
    let name = claims.display_name();
    let cache_key = format!("kc:{}", claims.sub);
    if let Some(CachedAuth::Subject {
        id,
        email: e,
        name: n,
    }) = state.principals.get(&cache_key)
    {
        if e == email && n == name {
            return Ok(id);
        }
    }
    let generation = state.principals.generation();
    let remember = |id: Uuid| {
        state.principals.insert(
            cache_key.clone(),
            CachedAuth::Subject {
                id,
                email: email.clone(),
                name: name.clone(),
            },
            generation,
        );
        id
    };
    let existing: Option<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, email, name FROM users WHERE external_auth_provider = 'keycloak' AND external_user_id = $1",
    )
    .bind(&claims.sub)
    .fetch_optional(&state.pool)
    .await?;
    let result = match existing {
        Some((id, e, n)) if e == email && n == name => return Ok(remember(id)),
        Some((id, _, _)) => {
            sqlx::query_scalar("UPDATE users SET email = $2, name = $3 WHERE id = $1 RETURNING id")
                .bind(id)
                .bind(&email)
                .bind(&name)
                .fetch_one(&state.pool)
                .await
        }
        None => {
            sqlx::query_scalar(
                "INSERT INTO users (id, email, name, external_auth_provider, external_user_id)
             VALUES ($1, $2, $3, 'keycloak', $4)
             ON CONFLICT (external_auth_provider, external_user_id)
             DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name
             RETURNING id",
            )
            .bind(Uuid::now_v7())
            .bind(&email)
            .bind(&name)
            .bind(&claims.sub)
            .fetch_one(&state.pool)
            .await
        }
    };
    match result {
        Ok(id) => Ok(remember(id)),
        // A concurrent first request of the same subject can trip the email index before the
        // subject's: the row it created is ours too.
        Err(sqlx::Error::Database(db)) if db.constraint() == Some("users_email_key") => {
            let same_subject: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM users WHERE external_auth_provider = 'keycloak' AND external_user_id = $1",
            )
            .bind(&claims.sub)
            .fetch_optional(&state.pool)
            .await?;
            same_subject.ok_or_else(|| {
                ApiError::InvalidToken(
                    "Another account already uses this email address; ask an administrator to link them."
                        .into(),
                )
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// What the per-instance principal cache holds; emptied on every `cityos_auth` notification.
#[derive(Clone, Debug)]
pub enum CachedAuth {
    /// A local-login session and its user.
    Session {
        user: UserPrincipal,
        expires_at: time::OffsetDateTime,
    },
    /// A user by id (Keycloak principals).
    User(UserPrincipal),
    /// The user row of a Keycloak subject and the profile it was stored with.
    Subject {
        id: Uuid,
        email: String,
        name: Option<String>,
    },
    /// An API key's record by prefix.
    Key(api_keys::KeyRecord),
}
