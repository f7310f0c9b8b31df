//! Who is calling: local login (argon2id + Payload-compatible HS256 JWTs, revocable sessions)
//! and the principal every access decision takes.

pub mod api_keys;
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
            secure_cookies: config.env.is_production(),
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
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        for scheme in ["JWT ", "Bearer "] {
            if let Some(t) = auth.strip_prefix(scheme) {
                return Some(t.trim().to_string());
            }
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
    cookie(headers, COOKIE_NAME)
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
        return match api_keys::authenticate(&state.pool, salt, &key).await? {
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
    let Some(token) = presented_token(headers) else {
        return Ok(Principal::Anonymous);
    };
    let Some(claims) = state.auth.verify(&token) else {
        return Ok(Principal::Anonymous);
    };
    let (Ok(user_id), Ok(sid)) = (Uuid::parse_str(&claims.id), Uuid::parse_str(&claims.sid)) else {
        return Ok(Principal::Anonymous);
    };
    Ok(match load_user(state, user_id, Some(sid)).await? {
        Some(mut u) => {
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
    // One round trip: the user, the live session check and the active memberships.
    let row: Option<(String, Vec<String>, sqlx::types::Json<Vec<MembershipRow>>)> = sqlx::query_as(
        "SELECT u.email, u.global_roles,
                COALESCE((SELECT json_agg(json_build_object('tenant_id', m.tenant_id, 'store_id', m.store_id, 'roles', m.roles))
                          FROM user_tenant_memberships m WHERE m.user_id = u.id AND m.status = 'active'), '[]'::json)
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
    let Some((email, global_roles, sqlx::types::Json(memberships))) = row else {
        return Ok(None);
    };
    Ok(Some(UserPrincipal {
        id,
        email,
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
    }))
}
