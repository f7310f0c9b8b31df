//! "Sign in with Keycloak": the OIDC authorization-code flow with PKCE (S256) against
//! `KEYCLOAK_ISSUER_URL`, as a public client (`KEYCLOAK_CLIENT_ID`). The endpoints come from
//! the issuer's discovery document; the state, the nonce and the code verifier live in a
//! short-lived HttpOnly cookie. The callback checks the state before anything else, redeems the
//! code with the verifier, and requires the ID token (same JWKS and issuer, audience = our
//! client, `typ: ID`) to carry this flow's nonce and the access token's subject. The access
//! token is then verified exactly as a Bearer token of the REST API is (JWKS, issuer, audience,
//! JIT user, role map) and becomes the session cookie, so the UI and the API see the same
//! principal.

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

/// The sign-in page with what went wrong (`key` in the dictionary); never signed in.
fn failed(headers: &HeaderMap, status: StatusCode, key: &str) -> Response {
    let lang = Lang::from_headers(headers);
    let mut res = render(
        status,
        &LoginPage {
            c: Chrome::bare(lang, "", None),
            email: String::new(),
            error: Some(lang.t(key).to_string()),
            keycloak: true,
        },
    );
    // The flow is over either way: its state, nonce and verifier are not reused.
    if let Ok(v) = HeaderValue::from_str(CLEAR_FLOW) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

const CLEAR_FLOW: &str = "cityos-admin-oidc=; Max-Age=0; Path=/admin/login; HttpOnly; SameSite=Lax";

/// `GET /admin/login/keycloak`: to the authorization endpoint, with a fresh state and verifier.
pub async fn start(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(kc) = &state.keycloak else {
        return failed(&headers, StatusCode::NOT_FOUND, "kc_not_configured");
    };
    let endpoints = match discover(kc.issuer()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "Keycloak discovery failed");
            return failed(&headers, StatusCode::BAD_GATEWAY, "kc_unreachable");
        }
    };
    let flow = Flow {
        state: crate::util::random_hex(16),
        nonce: crate::util::random_hex(16),
        verifier: crate::util::random_hex(32),
    };
    let challenge = crate::util::base64url_encode(&Sha256::digest(flow.verifier.as_bytes()));
    let mut url = endpoints.authorization_endpoint;
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(
        &form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id(&state))
            .append_pair("redirect_uri", &callback_url(&state, &headers))
            .append_pair("scope", "openid profile email")
            .append_pair("state", &flow.state)
            .append_pair("nonce", &flow.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish(),
    );
    let secure = if state.auth.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{FLOW_COOKIE}={}; Path=/admin/login; Max-Age=600; HttpOnly; SameSite=Lax{secure}",
        flow.cookie_value()
    );
    let mut res = Redirect::to(&url).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// One sign-in's secrets, kept by the browser in the flow cookie (`state.nonce.verifier`, all
/// hex) between the redirect to Keycloak and the callback.
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
}

impl Flow {
    fn cookie_value(&self) -> String {
        format!("{}.{}.{}", self.state, self.nonce, self.verifier)
    }

    fn from_cookie(headers: &HeaderMap) -> Option<Flow> {
        let raw = crate::http::extract::cookie(headers, FLOW_COOKIE)?;
        let mut parts = raw.split('.');
        let (state, nonce, verifier) = (parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        (parts.next().is_none() && hex(state) && hex(nonce) && hex(verifier)).then(|| Flow {
            state: state.to_string(),
            nonce: nonce.to_string(),
            verifier: verifier.to_string(),
        })
    }
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
    id_token: Option<String>,
    expires_in: Option<i64>,
}

/// `GET /admin/login/callback`: checks the state, redeems the code with the verifier, checks
/// the ID token's nonce, verifies the access token like any Bearer token, and signs the user in.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let Some(kc) = &state.keycloak else {
        return failed(&headers, StatusCode::NOT_FOUND, "kc_not_configured");
    };
    if let Some(e) = q.error {
        // Keycloak's error code (`access_denied`, …) is client input: logged, not echoed.
        tracing::info!(error = %e.chars().take(64).collect::<String>(), "Keycloak refused the sign-in");
        return failed(&headers, StatusCode::UNAUTHORIZED, "kc_refused");
    }
    let (Some(code), Some(got_state)) = (q.code, q.state) else {
        return failed(&headers, StatusCode::BAD_REQUEST, "kc_incomplete");
    };
    // The state first: a callback this browser did not start (login CSRF, a replayed or
    // tampered link) goes no further, and no code is redeemed.
    let Some(flow) = Flow::from_cookie(&headers).filter(|f| f.state == got_state) else {
        return failed(&headers, StatusCode::BAD_REQUEST, "kc_state");
    };
    let endpoints = match discover(kc.issuer()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "Keycloak discovery failed");
            return failed(&headers, StatusCode::BAD_GATEWAY, "kc_unreachable");
        }
    };
    let redirect_uri = callback_url(&state, &headers);
    let client = client_id(&state);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", client.as_str()),
        ("code_verifier", flow.verifier.as_str()),
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
        return failed(&headers, StatusCode::UNAUTHORIZED, "kc_no_token");
    };
    // The ID token ties the tokens to this flow: its nonce is the one sent from this browser,
    // and it names the access token's subject.
    let Some(id_token) = token.id_token.as_deref() else {
        tracing::warn!("Keycloak answered without an ID token");
        return failed(&headers, StatusCode::UNAUTHORIZED, "kc_no_token");
    };
    let id = match kc.verify_id_token(id_token, &client, &flow.nonce).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(error = ?e, "Keycloak ID token refused");
            return failed(&headers, StatusCode::UNAUTHORIZED, "kc_rejected");
        }
    };
    // The same verification as a Bearer token on the API.
    let mut bearer = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", token.access_token)) {
        bearer.insert(header::AUTHORIZATION, v);
    }
    let same_subject = kc
        .verify(&token.access_token)
        .await
        .is_ok_and(|claims| claims.sub == id.sub);
    let principal = crate::auth::principal_from_headers(&state, &bearer).await;
    if !same_subject || !matches!(principal, Ok(Principal::User(_))) {
        tracing::warn!(same_subject, "Keycloak access token refused");
        return failed(&headers, StatusCode::UNAUTHORIZED, "kc_rejected");
    }
    let secure = if state.auth.secure_cookies { "; Secure" } else { "" };
    let max_age = token.expires_in.unwrap_or(300).max(1);
    let session = format!(
        "{}={}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}",
        crate::auth::COOKIE_NAME,
        token.access_token
    );
    let mut res = Redirect::to("/admin").into_response();
    for c in [session, CLEAR_FLOW.to_string()] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}
