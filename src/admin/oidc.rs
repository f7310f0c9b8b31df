//! "Sign in with Keycloak": the OIDC authorization-code flow with PKCE (S256) against
//! `KEYCLOAK_ISSUER_URL`, as a public client (`KEYCLOAK_CLIENT_ID`). The endpoints come from
//! the issuer's discovery document; the state and the code verifier live in a short-lived
//! HttpOnly cookie. The access token obtained is verified exactly as a Bearer token of the
//! REST API is (JWKS, issuer, audience, JIT user, role map) and becomes the session cookie, so
//! the UI and the API see the same principal.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::i18n::Lang;
use super::session::LoginPage;
use super::{render, Chrome};
use crate::app::AppState;
use crate::auth::principal::Principal;

const FLOW_COOKIE: &str = "cityos-admin-oidc";

#[derive(Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
}

async fn discover(issuer: &str) -> Result<Discovery, String> {
    let url = format!("{issuer}/.well-known/openid-configuration");
    let res = reqwest::Client::new()
        .get(&url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("{url}: HTTP {}", res.status()));
    }
    res.json().await.map_err(|e| e.to_string())
}

fn client_id(state: &AppState) -> String {
    state
        .config
        .keycloak
        .client_id
        .clone()
        .unwrap_or_else(|| "cms-orchestrator".into())
}

/// Where Keycloak sends the browser back: this server as the browser reached it (Keycloak
/// checks it against the client's allowed redirect URIs), with `APP_URL`'s scheme.
fn callback_url(state: &AppState, headers: &HeaderMap) -> String {
    let scheme = if state.config.app_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("{scheme}://{host}/admin/login/callback")
}

fn failed(headers: &HeaderMap, status: StatusCode, message: String) -> Response {
    let lang = Lang::from_headers(headers);
    render(
        status,
        &LoginPage {
            c: Chrome::bare(lang, "", None),
            email: String::new(),
            error: Some(message),
            keycloak: true,
        },
    )
}

/// `GET /admin/login/keycloak`: to the authorization endpoint, with a fresh state and verifier.
pub async fn start(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(kc) = &state.keycloak else {
        return failed(
            &headers,
            StatusCode::NOT_FOUND,
            "Keycloak is not configured.".into(),
        );
    };
    let endpoints = match discover(kc.issuer()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "Keycloak discovery failed");
            return failed(
                &headers,
                StatusCode::BAD_GATEWAY,
                "Keycloak is not reachable.".into(),
            );
        }
    };
    let verifier = crate::util::random_hex(32);
    let challenge = crate::util::base64url_encode(&Sha256::digest(verifier.as_bytes()));
    let flow_state = crate::util::random_hex(16);
    let mut url = endpoints.authorization_endpoint;
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(
        &form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id(&state))
            .append_pair("redirect_uri", &callback_url(&state, &headers))
            .append_pair("scope", "openid profile email")
            .append_pair("state", &flow_state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish(),
    );
    let secure = if state.auth.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{FLOW_COOKIE}={flow_state}.{verifier}; Path=/admin/login; Max-Age=600; HttpOnly; SameSite=Lax{secure}"
    );
    let mut res = Redirect::to(&url).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<i64>,
}

/// `GET /admin/login/callback`: checks the state, redeems the code with the verifier, verifies
/// the token like any Bearer token, and signs the user in.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let Some(kc) = &state.keycloak else {
        return failed(
            &headers,
            StatusCode::NOT_FOUND,
            "Keycloak is not configured.".into(),
        );
    };
    if let Some(e) = q.error {
        return failed(
            &headers,
            StatusCode::UNAUTHORIZED,
            format!("Keycloak refused the sign-in: {e}"),
        );
    }
    let flow = crate::http::extract::cookie(&headers, FLOW_COOKIE).unwrap_or_default();
    let (expected_state, verifier) = flow.split_once('.').unwrap_or(("", ""));
    let (Some(code), Some(got_state)) = (q.code, q.state) else {
        return failed(
            &headers,
            StatusCode::BAD_REQUEST,
            "The sign-in response is incomplete.".into(),
        );
    };
    if expected_state.is_empty() || expected_state != got_state {
        return failed(
            &headers,
            StatusCode::BAD_REQUEST,
            "The sign-in expired. Please try again.".into(),
        );
    }
    let endpoints = match discover(kc.issuer()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "Keycloak discovery failed");
            return failed(
                &headers,
                StatusCode::BAD_GATEWAY,
                "Keycloak is not reachable.".into(),
            );
        }
    };
    let redirect_uri = callback_url(&state, &headers);
    let client = client_id(&state);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", client.as_str()),
        ("code_verifier", verifier),
    ];
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let token = match reqwest::Client::new()
        .post(&endpoints.token_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json::<TokenResponse>().await.ok(),
        Ok(r) => {
            tracing::warn!(status = %r.status(), "Keycloak token exchange refused");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "Keycloak token exchange failed");
            None
        }
    };
    let Some(token) = token else {
        return failed(
            &headers,
            StatusCode::UNAUTHORIZED,
            "Keycloak did not issue a token.".into(),
        );
    };
    // The same verification as a Bearer token on the API.
    let mut bearer = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", token.access_token)) {
        bearer.insert(header::AUTHORIZATION, v);
    }
    match crate::auth::principal_from_headers(&state, &bearer).await {
        Ok(Principal::User(_)) => {}
        Ok(_) | Err(_) => {
            return failed(
                &headers,
                StatusCode::UNAUTHORIZED,
                "The Keycloak token was not accepted.".into(),
            );
        }
    }
    let secure = if state.auth.secure_cookies { "; Secure" } else { "" };
    let max_age = token.expires_in.unwrap_or(300).max(1);
    let session = format!(
        "{}={}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}",
        crate::auth::COOKIE_NAME,
        token.access_token
    );
    let clear = format!("{FLOW_COOKIE}=; Max-Age=0; Path=/admin/login; HttpOnly; SameSite=Lax");
    let mut res = Redirect::to("/admin").into_response();
    for c in [session, clear] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}
