//! Sign-in and sign-out, the tenant selector and the language switch.

use std::net::SocketAddr;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::forms::FormInput;
use super::i18n::{Lang, LANG_COOKIE};
use super::{render, AdminCtx, Chrome};
use crate::app::AppState;
use crate::auth::routes::{local_login, revoke_sessions, session_cookie, CLEAR_COOKIE};
use crate::http::error::ApiError;

#[derive(Template)]
#[template(path = "admin/login.html")]
pub struct LoginPage {
    pub c: Chrome,
    pub email: String,
    pub error: Option<String>,
    /// Whether "Sign in with Keycloak" is offered (an issuer is configured).
    pub keycloak: bool,
}

pub async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let lang = Lang::from_headers(&headers);
    render(
        StatusCode::OK,
        &LoginPage {
            c: Chrome::bare(lang, "", None),
            email: String::new(),
            error: None,
            keycloak: state.keycloak.is_some(),
        },
    )
}

/// The sign-in form: the REST login's own core (throttle, lockout, session, audit), then the
/// session token in the HttpOnly `payload-token` cookie the REST side also accepts.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = Lang::from_headers(&headers);
    // Login CSRF (there is no session to bind a token to yet): a browser's cross-site post
    // names another origin, and is refused.
    if cross_site(&headers) {
        return render(
            StatusCode::FORBIDDEN,
            &LoginPage {
                c: Chrome::bare(lang, "", None),
                email: String::new(),
                error: Some(lang.t("bad_csrf").into()),
                keycloak: state.keycloak.is_some(),
            },
        );
    }
    let input = FormInput::parse(&body);
    let email = input.get("email").unwrap_or("").to_string();
    let password = input.get("password").unwrap_or("");
    match local_login(&state, &email, password, &headers, addr).await {
        Ok(ok) => {
            let mut res = Redirect::to("/admin").into_response();
            if let Ok(v) = HeaderValue::from_str(&session_cookie(&state, &ok.token, ok.exp)) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => {
            let status = e.status();
            let message = match &e {
                ApiError::Validation(_) => lang.t("invalid_login").to_string(),
                ApiError::Unauthorized(m) if m.contains("incorrect") => lang.t("invalid_login").to_string(),
                e if status.is_client_error() => e.to_string(),
                e => {
                    tracing::error!(error = %e, "admin sign-in failed");
                    lang.t("error").to_string()
                }
            };
            render(
                status,
                &LoginPage {
                    c: Chrome::bare(lang, "", None),
                    email,
                    error: Some(message),
                    keycloak: state.keycloak.is_some(),
                },
            )
        }
    }
}

/// Signs out: the session is revoked (not just the cookie dropped).
pub async fn logout(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ctx: AdminCtx,
    body: Bytes,
) -> Response {
    let input = FormInput::parse(&body);
    if !ctx.csrf_ok(&state, input.get("_csrf")) {
        return super::views::csrf_failed(&ctx);
    }
    if let Err(e) = revoke_sessions(&state, &ctx.user, false, &headers, addr).await {
        tracing::error!(error = %e, "admin sign-out failed");
    }
    let mut res = Redirect::to("/admin/login").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, HeaderValue::from_static(CLEAR_COOKIE));
    res
}

/// The tenant selector. A super admin's choice is `cityos-selected-tenant`, which the tenancy
/// resolver honours for super admins only (everywhere); a member of several tenants chooses one
/// of its own tenants, kept in the admin's own cookie (`super::ADMIN_TENANT_COOKIE`, path
/// `/admin`). Any other tenant is refused.
pub async fn select_tenant(State(state): State<AppState>, ctx: AdminCtx, body: Bytes) -> Response {
    let input = FormInput::parse(&body);
    if !ctx.csrf_ok(&state, input.get("_csrf")) {
        return super::views::csrf_failed(&ctx);
    }
    let tenant = input.get("tenant").and_then(|t| uuid::Uuid::parse_str(t).ok());
    let (name, path) = if ctx.call.principal.is_super_admin() {
        ("cityos-selected-tenant", "/")
    } else {
        let mine = |t: &uuid::Uuid| ctx.user.memberships.iter().any(|m| m.tenant_id == *t);
        if tenant.is_some_and(|t| !mine(&t)) {
            return super::views::forbidden(&ctx, &state).await;
        }
        (super::ADMIN_TENANT_COOKIE, "/admin")
    };
    let secure = if state.auth.secure_cookies { "; Secure" } else { "" };
    let cookie = match tenant {
        Some(t) => format!("{name}={t}; Path={path}; HttpOnly; SameSite=Lax{secure}"),
        None => format!(
            "{name}=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path={path}; HttpOnly; SameSite=Lax{secure}"
        ),
    };
    let back = safe_back(input.get("back"));
    let mut res = Redirect::to(&back).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
pub struct LangQuery {
    to: String,
    back: Option<String>,
}

/// The language switch (a plain link; it changes no data).
pub async fn switch_lang(Query(q): Query<LangQuery>) -> Response {
    let lang = Lang::parse(&q.to).unwrap_or(Lang::En);
    let mut res = Redirect::to(&safe_back(q.back.as_deref())).into_response();
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        lang.code()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// A local admin path to return to (never another site).
fn safe_back(back: Option<&str>) -> String {
    match back {
        Some(b) if b.starts_with("/admin") && !b.starts_with("//") && !b.contains('\\') => b.to_string(),
        _ => "/admin".to_string(),
    }
}

/// Whether a request comes from another site: `Sec-Fetch-Site: cross-site`, or an `Origin`
/// whose host is not the one the request was sent to.
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site == Some("cross-site") {
        return true;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some("null"), _) => true,
        (Some(o), Some(h)) => o.split_once("://").map(|(_, rest)| rest) != Some(h),
        _ => false,
    }
}
