//! Payload's auth routes on `users`: login, me, refresh-token, logout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{password, Claims, COOKIE_NAME, TOKEN_SECONDS};
use crate::app::AppState;
use crate::auth::principal::Principal;
use crate::collections::access::TenantContext;
use crate::collections::engine::read::{self, ReadEnv};
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{json_object, CallContext, QueryTree};

/// Failed logins before an account is locked, and for how long (Payload's defaults).
const MAX_LOGIN_ATTEMPTS: i32 = 5;
const LOCK_MINUTES: i64 = 10;
/// Failed logins per IP and minute before the IP is slowed down.
const MAX_FAILURES_PER_IP: u32 = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users/login", post(login))
        .route("/users/logout", post(logout))
        .route("/users/me", get(me))
        .route("/users/refresh-token", post(refresh))
}

/// Failed logins per client IP in the current minute.
static IP_FAILURES: Mutex<Option<HashMap<IpAddr, (Instant, u32)>>> = Mutex::new(None);

fn ip_blocked(ip: IpAddr) -> bool {
    let guard = IP_FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .as_ref()
        .and_then(|m| m.get(&ip))
        .is_some_and(|(start, n)| start.elapsed() < Duration::from_secs(60) && *n >= MAX_FAILURES_PER_IP)
}

fn note_ip_failure(ip: IpAddr) {
    let mut guard = IP_FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if map.len() > 100_000 {
        map.retain(|_, (start, _)| start.elapsed() < Duration::from_secs(60));
    }
    let entry = map.entry(ip).or_insert((Instant::now(), 0));
    if entry.0.elapsed() >= Duration::from_secs(60) {
        *entry = (Instant::now(), 0);
    }
    entry.1 += 1;
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: Uuid,
    password_hash: Option<String>,
    login_attempts: i32,
    lock_until: Option<OffsetDateTime>,
    status: String,
}

fn wrong_credentials() -> ApiError {
    ApiError::Unauthorized("The email or password provided is incorrect.".into())
}

/// A successful local sign-in: the session token, its expiry and the user.
pub struct LocalLogin {
    pub token: String,
    pub exp: i64,
    pub user_id: Uuid,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_object(&body)?;
    let email = body.get("email").and_then(Value::as_str).unwrap_or("");
    let pw = body.get("password").and_then(Value::as_str).unwrap_or("");
    let LocalLogin { token, exp, user_id } = local_login(&state, email, pw, &headers, addr).await?;
    let user = user_doc(&state, user_id, "local-jwt").await?;
    let body = json!({"message": "Authentication Passed", "exp": exp, "token": token, "user": user});
    Ok(with_cookie(&state, Json(body).into_response(), &token, exp))
}

/// The local sign-in both the REST login and the admin's sign-in form use: required fields,
/// the per-IP throttle, the account lockout, the session row, the audit rows, the token.
pub async fn local_login(
    state: &AppState,
    email: &str,
    pw: &str,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Result<LocalLogin, ApiError> {
    let email = email.trim().to_lowercase();
    let mut missing = Vec::new();
    if email.is_empty() {
        missing.push(FieldError::new("email", Some("Email"), "This field is required."));
    }
    if pw.is_empty() {
        missing.push(FieldError::new(
            "password",
            Some("Password"),
            "This field is required.",
        ));
    }
    if !missing.is_empty() {
        return Err(ApiError::validation("users", None, missing));
    }
    if ip_blocked(addr.ip()) {
        return Err(ApiError::Unauthorized(
            "Too many failed login attempts. Try again later.".into(),
        ));
    }
    let row: Option<LoginRow> = sqlx::query_as(
        "SELECT id, password_hash, login_attempts, lock_until, status FROM users WHERE email = $1",
    )
    .bind(&email)
    .fetch_optional(&state.pool)
    .await?;
    let Some(LoginRow {
        id,
        password_hash: hash,
        login_attempts: attempts,
        lock_until,
        status,
    }) = row
    else {
        // Spend the same time as a real check so emails cannot be probed by timing.
        let _ = password::verify(pw, "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4Ctbk2wXqYm9OTAD7NqOtCGYg/Ryr7twEPV5RwqPAyA");
        note_ip_failure(addr.ip());
        return Err(wrong_credentials());
    };
    if lock_until.is_some_and(|t| t > OffsetDateTime::now_utc()) {
        return Err(ApiError::Unauthorized(
            "This user is locked due to having too many failed login attempts.".into(),
        ));
    }
    let ok = status == "active" && hash.as_deref().is_some_and(|h| password::verify(pw, h));
    if !ok {
        note_ip_failure(addr.ip());
        let attempts = attempts + 1;
        let lock = attempts >= MAX_LOGIN_ATTEMPTS;
        sqlx::query(
            "UPDATE users SET login_attempts = CASE WHEN $2 THEN 0 ELSE $3 END,
                              lock_until = CASE WHEN $2 THEN now() + make_interval(mins => $4) ELSE lock_until END
             WHERE id = $1",
        )
        .bind(id)
        .bind(lock)
        .bind(attempts)
        .bind(LOCK_MINUTES as i32)
        .execute(&state.pool)
        .await?;
        audit_auth(state, Some(id), "login_failed", headers, addr).await?;
        return Err(wrong_credentials());
    }
    let sid = Uuid::now_v7();
    let now = OffsetDateTime::now_utc();
    let exp = now.unix_timestamp() + TOKEN_SECONDS;
    sqlx::query(
        "INSERT INTO user_sessions (id, user_id, expires_at, ip, user_agent)
         VALUES ($1, $2, to_timestamp($3), $4::inet, $5)",
    )
    .bind(sid)
    .bind(id)
    .bind(exp as f64)
    .bind(addr.ip().to_string())
    .bind(headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()))
    .execute(&state.pool)
    .await?;
    sqlx::query(
        "UPDATE users SET login_attempts = 0, lock_until = NULL, last_login_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(&state.pool)
    .await?;
    audit_auth(state, Some(id), "login", headers, addr).await?;
    let token = state.auth.mint(&Claims {
        id: id.to_string(),
        collection: "users".into(),
        email: email.clone(),
        sid: sid.to_string(),
        iat: now.unix_timestamp(),
        exp,
    })?;
    Ok(LocalLogin {
        token,
        exp,
        user_id: id,
    })
}

async fn me(State(state): State<AppState>, ctx: CallContext) -> Result<Json<Value>, ApiError> {
    if let Principal::ApiKey(k) = &ctx.principal {
        let user = match k.owner_user {
            Some(owner) => user_doc(&state, owner, "api-key").await?,
            None => json!({"id": k.id, "prefix": k.prefix, "scopes": k.scopes, "tenant": k.tenant_id,
                "collection": "api-keys", "_strategy": "api-key"}),
        };
        return Ok(Json(
            json!({"user": user, "collection": user["collection"].clone(), "strategy": "api-key", "message": "Account"}),
        ));
    }
    let Principal::User(u) = &ctx.principal else {
        return Ok(Json(json!({"user": null, "message": "Account"})));
    };
    let user = user_doc(&state, u.id, u.strategy).await?;
    let mut body = json!({"user": user, "collection": "users", "strategy": u.strategy});
    if let Some((token, exp)) = &u.token {
        body["exp"] = json!(exp);
        body["token"] = json!(token);
    }
    body["message"] = json!("Account");
    Ok(Json(body))
}

async fn refresh(State(state): State<AppState>, ctx: CallContext) -> Result<Response, ApiError> {
    let Principal::User(u) = &ctx.principal else {
        return Err(ApiError::Forbidden);
    };
    let Some(sid) = u.session_id else {
        return Err(ApiError::Forbidden);
    };
    let now = OffsetDateTime::now_utc();
    let exp = now.unix_timestamp() + TOKEN_SECONDS;
    sqlx::query("UPDATE user_sessions SET expires_at = to_timestamp($2) WHERE id = $1")
        .bind(sid)
        .bind(exp as f64)
        .execute(&state.pool)
        .await?;
    let token = state.auth.mint(&Claims {
        id: u.id.to_string(),
        collection: "users".into(),
        email: u.email.clone(),
        sid: sid.to_string(),
        iat: now.unix_timestamp(),
        exp,
    })?;
    let user = user_doc(&state, u.id, u.strategy).await?;
    let body = json!({"message": "Token refresh successful.", "exp": exp, "refreshedToken": token,
        "setCookie": true, "strategy": u.strategy, "user": user});
    Ok(with_cookie(&state, Json(body).into_response(), &token, exp))
}

async fn logout(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    QueryTree(query): QueryTree,
    ctx: CallContext,
) -> Result<Response, ApiError> {
    let Principal::User(u) = &ctx.principal else {
        return Err(ApiError::bad_request("No User"));
    };
    let all = query.get("allSessions").and_then(Value::as_str) == Some("true");
    revoke_sessions(&state, u, all, &headers, addr).await?;
    let mut res = Json(json!({"message": "Logout successful."})).into_response();
    if let Ok(v) = HeaderValue::from_str(CLEAR_COOKIE) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// `Set-Cookie` that drops the session cookie.
pub const CLEAR_COOKIE: &str =
    "payload-token=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; SameSite=Lax";

/// Revokes the caller's session (or all of its sessions) and writes the audit row: the REST
/// logout and the admin's sign-out.
pub async fn revoke_sessions(
    state: &AppState,
    u: &crate::auth::principal::UserPrincipal,
    all: bool,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE user_sessions SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2 OR id = $3)",
    )
    .bind(u.id)
    .bind(all)
    .bind(u.session_id)
    .execute(&state.pool)
    .await?;
    // This instance forgets the session now; the others on the database's NOTIFY.
    state.principals.clear();
    audit_auth(state, Some(u.id), "logout", headers, addr).await
}

/// The session cookie's `Set-Cookie` value (`Secure` when cookies must be).
pub fn session_cookie(state: &AppState, token: &str, exp: i64) -> String {
    let expires = OffsetDateTime::from_unix_timestamp(exp)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc2822).ok())
        .unwrap_or_default()
        .replace("+0000", "GMT");
    let mut cookie = format!("{COOKIE_NAME}={token}; Expires={expires}; Path=/; HttpOnly; SameSite=Lax");
    if state.auth.secure_cookies {
        cookie.push_str("; Secure");
    }
    cookie
}

fn with_cookie(state: &AppState, mut res: Response, token: &str, exp: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&session_cookie(state, token, exp)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The user document as the auth routes return it.
async fn user_doc(state: &AppState, id: Uuid, strategy: &str) -> Result<Value, ApiError> {
    let registry = state.registry.clone();
    let decl = registry
        .get("users")
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("users not declared")))?;
    let principal = match super::load_user(state, id, None).await? {
        Some(u) => Principal::User(u),
        None => return Err(ApiError::Forbidden),
    };
    let env = ReadEnv {
        registry: &registry,
        authz: &state.authz,
        principal: &principal,
        tenant: &TenantContext::default(),
        app_url: &state.config.app_url,
    };
    // Read as the user itself, so its own sessions are visible (and only its own).
    let scope = crate::db::scope::DbScope {
        tenant_id: None,
        user_id: Some(id),
        all_tenants: false,
    };
    let mut conn = crate::db::scope::begin(&state.pool, &scope).await?;
    let mut doc = read::find_by_id(&mut conn, &env, decl, &id.to_string(), 0, None, None).await?;
    doc["_strategy"] = json!(strategy);
    Ok(doc)
}

async fn audit_auth(
    state: &AppState,
    user: Option<Uuid>,
    action: &str,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO audit_logs (actor_type, actor_user_id, action, collection, doc_id, ip, user_agent, request_id)
         VALUES ('user', $1, $2, 'auth', $3, $4::inet, $5, $6)",
    )
    .bind(user)
    .bind(action)
    .bind(user.map(|u| u.to_string()))
    .bind(addr.ip().to_string())
    .bind(headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()))
    .bind(headers.get("x-request-id").and_then(|v| v.to_str().ok()))
    .execute(&state.pool)
    .await?;
    Ok(())
}
