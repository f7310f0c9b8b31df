//! An auto-approving OIDC provider for the admin's "Sign in with Keycloak" tests (over HTTP in
//! tests/admin_keycloak.rs, in Chromium in tests/admin_browser.rs).
//!
//! The Keycloak-shaped stand-in (`oidc.rs`) issues tokens and publishes discovery and JWKS but
//! has no authorization endpoint, so this front sits before it under the issuer's address:
//!
//! - `GET …/protocol/openid-connect/auth` approves at once (as Keycloak does for a browser that
//!   already has an SSO session) and redirects back with a one-time code. It insists on a
//!   `state`, a `nonce` and an S256 `code_challenge`. The approved user is the one the browser's
//!   IdP session names (`GET /test/sso/{username}` sets it, as signing in at Keycloak would),
//!   else the provider's default user.
//! - `POST …/protocol/openid-connect/token` (`authorization_code`) redeems a code once, only
//!   with the verifier matching the challenge and the same client and redirect URI, and answers
//!   like Keycloak: an RS256 access token with the user's realm/client roles and tenant claim,
//!   and an ID token (`typ: ID`, `aud` = the client, the request's `nonce`).
//! - Everything else (discovery, JWKS, the other grants, `/test/mint`) is the stand-in's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::oidc::OidcStandIn;

/// A Keycloak account the provider can approve.
#[derive(Debug, Clone, Copy)]
pub struct KeycloakUser {
    pub username: &'static str,
    pub sub: &'static str,
    pub email: &'static str,
    pub given_name: &'static str,
    pub family_name: &'static str,
    /// Roles of the `cms-orchestrator` client (Keycloak's spelling, mapped by the app).
    pub client_roles: &'static [&'static str],
    /// The `tenant_id` claim (a tenant handle) the membership roles apply to.
    pub tenant: Option<&'static str>,
}

impl KeycloakUser {
    pub fn name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }
}

/// A tenant admin of Fashionista (`fashionista-sa`) by its Keycloak client role.
pub const KC_TENANT_ADMIN: KeycloakUser = KeycloakUser {
    username: "kc-admin",
    sub: "kc-admin-ui",
    email: "kc-admin@fashionista.test",
    given_name: "Kawthar",
    family_name: "Admin",
    client_roles: &["tenant-admin"],
    tenant: Some("fashionista-sa"),
};

/// A Fashionista member whose only role (a B2B buyer) does not open the admin.
pub const KC_BUYER: KeycloakUser = KeycloakUser {
    username: "kc-buyer",
    sub: "kc-buyer-ui",
    email: "kc-buyer@fashionista.test",
    given_name: "Basel",
    family_name: "Buyer",
    client_roles: &["b2b-buyer"],
    tenant: Some("fashionista-sa"),
};

const USERS: &[KeycloakUser] = &[KC_TENANT_ADMIN, KC_BUYER];
const SSO_COOKIE: &str = "kc-test-sso";

/// What an authorization request bound its code to.
struct Grant {
    challenge: String,
    redirect_uri: String,
    client_id: String,
    nonce: String,
    user: KeycloakUser,
}

#[derive(Clone)]
struct Front {
    upstream: String,
    default_user: KeycloakUser,
    codes: Arc<Mutex<HashMap<String, Grant>>>,
    /// Codes redeemed, so a test can tell "refused by the app" from "refused by the IdP".
    redeemed: Arc<Mutex<usize>>,
    client: reqwest::Client,
}

/// The running provider: the front and the stand-in behind it.
pub struct OidcProvider {
    pub stand_in: OidcStandIn,
    pub base: String,
    front: Front,
    server: tokio::task::JoinHandle<()>,
}

impl OidcProvider {
    /// Starts the stand-in and the front; the front approves `default_user` unless the browser's
    /// IdP session names another.
    pub async fn start(default_user: KeycloakUser) -> OidcProvider {
        let port = super::free_port();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let front = Front {
            upstream: format!("http://127.0.0.1:{port}"),
            default_user,
            codes: Arc::default(),
            redeemed: Arc::default(),
            client: reqwest::Client::new(),
        };
        let router = Router::new().fallback(handle).with_state(front.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        let stand_in = OidcStandIn::start_behind(port, &base).await;
        OidcProvider {
            stand_in,
            base,
            front,
            server,
        }
    }

    pub fn issuer(&self) -> String {
        self.stand_in.issuer()
    }

    /// The orchestrator's environment for this provider.
    pub fn env(&self) -> Vec<(String, String)> {
        self.stand_in.env()
    }

    /// How many codes were exchanged for tokens.
    pub fn codes_redeemed(&self) -> usize {
        *self.front.redeemed.lock().unwrap()
    }

    pub fn stop(mut self) {
        self.server.abort();
        self.stand_in.stop();
    }
}

fn b64url(bytes: &[u8]) -> String {
    cityos::util::base64url_encode(bytes)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn handle(
    State(f): State<Front>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if let Some(username) = path.strip_prefix("/test/sso/") {
        return sso_session(username);
    }
    if method == Method::GET && path.ends_with("/protocol/openid-connect/auth") {
        return authorize(&f, &uri, &headers);
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if method == Method::POST
        && path.ends_with("/protocol/openid-connect/token")
        && form.get("grant_type").map(String::as_str) == Some("authorization_code")
    {
        return redeem(&f, &form).await;
    }
    forward(&f, method, &uri, &headers, body).await
}

/// Signs the browser in at the IdP as `username` (the SSO session later approvals use).
fn sso_session(username: &str) -> Response {
    let Some(user) = USERS.iter().find(|u| u.username == username) else {
        return (StatusCode::NOT_FOUND, "unknown user").into_response();
    };
    (
        [
            (
                "set-cookie",
                format!("{SSO_COOKIE}={}; Path=/; HttpOnly", user.username),
            ),
            ("content-type", "text/html; charset=utf-8".to_string()),
        ],
        format!(
            "<title>IdP session</title><p id=\"sso\">Signed in at the IdP as {}</p>",
            user.username
        ),
    )
        .into_response()
}

fn authorize(f: &Front, uri: &Uri, headers: &HeaderMap) -> Response {
    let q: HashMap<String, String> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    if get("response_type").as_deref() != Some("code") {
        return (StatusCode::BAD_REQUEST, "response_type=code required").into_response();
    }
    if get("code_challenge_method").as_deref() != Some("S256") {
        return (StatusCode::BAD_REQUEST, "PKCE S256 required").into_response();
    }
    let (Some(challenge), Some(redirect_uri), Some(client_id), Some(state), Some(nonce)) = (
        get("code_challenge"),
        get("redirect_uri"),
        get("client_id"),
        get("state"),
        get("nonce"),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            "code_challenge, redirect_uri, client_id, state and nonce are required",
        )
            .into_response();
    };
    let user = cookie(headers, SSO_COOKIE)
        .and_then(|name| USERS.iter().find(|u| u.username == name))
        .copied()
        .unwrap_or(f.default_user);
    let code = uuid::Uuid::new_v4().simple().to_string();
    f.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            challenge,
            redirect_uri: redirect_uri.clone(),
            client_id,
            nonce,
            user,
        },
    );
    let back = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", &state)
        .finish();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [("location", format!("{redirect_uri}{sep}{back}"))],
    )
        .into_response()
}

async fn redeem(f: &Front, form: &HashMap<String, String>) -> Response {
    let code = form.get("code").map(String::as_str).unwrap_or("");
    // A code is single use: taken out whether or not the rest checks out.
    let Some(grant) = f.codes.lock().unwrap().remove(code) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Code not valid");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if b64url(&Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed: Code mismatch",
        );
    }
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Incorrect redirect_uri");
    }
    if form.get("client_id") != Some(&grant.client_id) {
        return oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client", "Client mismatch");
    }
    let u = grant.user;
    let profile = json!({
        "name": u.name(), "given_name": u.given_name, "family_name": u.family_name,
        "azp": grant.client_id,
    });
    let mut access = json!({
        "sub": u.sub, "username": u.username, "email": u.email,
        "clientRoles": {"cms-orchestrator": u.client_roles},
        "claims": profile,
    });
    if let Some(t) = u.tenant {
        access["tenantId"] = json!(t);
    }
    let mut id_claims = profile.clone();
    for (k, v) in [
        ("typ", json!("ID")),
        ("aud", json!(grant.client_id)),
        ("nonce", json!(grant.nonce)),
        // An ID token carries identity, not authorisation.
        ("realm_access", Value::Null),
        ("resource_access", Value::Null),
        ("scope", Value::Null),
        ("allowed-origins", Value::Null),
    ] {
        id_claims[k] = v;
    }
    let id = json!({"sub": u.sub, "username": u.username, "email": u.email, "claims": id_claims});
    let (Some(access_token), Some(id_token)) = (mint(f, access).await, mint(f, id).await) else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "minting failed",
        );
    };
    *f.redeemed.lock().unwrap() += 1;
    axum::Json(json!({
        "access_token": access_token, "id_token": id_token, "expires_in": 300,
        "refresh_expires_in": 0, "token_type": "Bearer", "scope": "openid profile email",
    }))
    .into_response()
}

async fn mint(f: &Front, body: Value) -> Option<String> {
    let res: Value = f
        .client
        .post(format!("{}/test/mint", f.upstream))
        .json(&body)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    res["access_token"].as_str().map(str::to_string)
}

/// Anything else is the stand-in's.
async fn forward(f: &Front, method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
    let target = format!(
        "{}{}",
        f.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut req = f.client.request(method, target).body(body);
    for h in ["content-type", "authorization"] {
        if let Some(v) = headers.get(h) {
            req = req.header(h, v);
        }
    }
    match req.send().await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            (
                status,
                [("content-type", ct)],
                r.bytes().await.unwrap_or_default(),
            )
                .into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
