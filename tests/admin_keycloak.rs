//! "Sign in with Keycloak" in the admin: the authorization-code flow with PKCE, end to end.
//! The OIDC stand-in has no authorization endpoint, so the test puts a small front before it
//! that auto-approves (`/auth`), redeems codes only with the right verifier (`/token`,
//! `authorization_code`), and forwards everything else (discovery, JWKS, minting) to it.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use common::oidc::OidcStandIn;
use common::TestApp;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A code's challenge, redirect URI and client.
type Grant = (String, String, String);

#[derive(Clone)]
struct Front {
    upstream: String,
    codes: Arc<Mutex<HashMap<String, Grant>>>,
    client: reqwest::Client,
}

fn b64url(bytes: &[u8]) -> String {
    cityos::util::base64url_encode(bytes)
}

async fn front(
    State(f): State<Front>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if path.ends_with("/protocol/openid-connect/auth") {
        let q: HashMap<String, String> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        if q.get("code_challenge_method").map(String::as_str) != Some("S256")
            || !q.contains_key("code_challenge")
        {
            return (StatusCode::BAD_REQUEST, "PKCE S256 required").into_response();
        }
        let code = uuid::Uuid::new_v4().simple().to_string();
        f.codes.lock().unwrap().insert(
            code.clone(),
            (
                q["code_challenge"].clone(),
                q["redirect_uri"].clone(),
                q["client_id"].clone(),
            ),
        );
        let location = format!("{}?code={code}&state={}", q["redirect_uri"], q["state"]);
        return (StatusCode::FOUND, [("location", location)]).into_response();
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if path.ends_with("/protocol/openid-connect/token")
        && form.get("grant_type").map(String::as_str) == Some("authorization_code")
    {
        let entry = f
            .codes
            .lock()
            .unwrap()
            .remove(form.get("code").map(String::as_str).unwrap_or(""));
        let Some((challenge, redirect_uri, client_id)) = entry else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant"})),
            )
                .into_response();
        };
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        if b64url(&Sha256::digest(verifier.as_bytes())) != challenge
            || form.get("redirect_uri") != Some(&redirect_uri)
            || form.get("client_id") != Some(&client_id)
        {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({"error": "invalid_grant", "error_description": "PKCE verification failed"}),
                ),
            )
                .into_response();
        }
        let minted: Value = f
            .client
            .post(format!("{}/test/mint", f.upstream))
            .json(
                &json!({"sub": "kc-admin-ui", "email": "kc-admin@fashionista.test",
                "clientRoles": {"cms-orchestrator": ["tenant-admin"]}, "tenantId": "fashionista-sa"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        return axum::Json(
            json!({"access_token": minted["access_token"], "expires_in": 300, "token_type": "Bearer"}),
        )
        .into_response();
    }
    // Everything else: the stand-in itself.
    let mut req = f
        .client
        .request(
            method,
            format!(
                "{}{}",
                f.upstream,
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            ),
        )
        .body(body);
    if let Some(ct) = headers.get("content-type") {
        req = req.header("content-type", ct);
    }
    match req.send().await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
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

async fn idp() -> (OidcStandIn, tokio::task::JoinHandle<()>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Front {
        upstream: format!("http://127.0.0.1:{port}"),
        codes: Arc::default(),
        client: reqwest::Client::new(),
    };
    let router = Router::new().fallback(front).with_state(state);
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (OidcStandIn::start_behind(port, &base).await, server)
}

fn cookies_of(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn keycloak_sign_in_runs_the_code_flow_with_pkce() {
    let (oidc, front) = idp().await;
    let url = common::fresh_database().await;
    let env: Vec<(String, String)> = oidc.env();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::spawn_on(&url, &env_ref).await;

    let login = app.get("/admin/login").await.text().await.unwrap();
    assert!(login.contains("href=\"/admin/login/keycloak\""));

    // 1. To the authorization endpoint, with a S256 challenge and a state.
    let res = app.get("/admin/login/keycloak").await;
    assert_eq!(res.status(), 303);
    let flow_cookie = cookies_of(&res).into_iter().next().expect("flow cookie");
    let authorize = res.headers()["location"].to_str().unwrap().to_string();
    assert!(authorize.starts_with(&oidc.issuer()) && authorize.contains("code_challenge_method=S256"));
    // 2. The IdP approves and sends the browser back with a code.
    let res = app.client.get(&authorize).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let callback = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        callback.starts_with(&app.url("/admin/login/callback")),
        "{callback}"
    );

    // A callback with a tampered verifier is refused by the IdP: no session.
    let (state_part, _) = flow_cookie.split_once('.').unwrap();
    let forged = format!("{state_part}.{}", "0".repeat(64));
    let res = app
        .client
        .get(&callback)
        .header("Cookie", &forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(!cookies_of(&res).iter().any(|c| c.starts_with("payload-token=")));

    // 3. A fresh round with the right verifier signs the user in.
    let res = app.get("/admin/login/keycloak").await;
    let flow_cookie = cookies_of(&res).into_iter().next().unwrap();
    let authorize = res.headers()["location"].to_str().unwrap().to_string();
    let res = app.client.get(&authorize).send().await.unwrap();
    let callback = res.headers()["location"].to_str().unwrap().to_string();
    // A state that does not match the cookie's is refused before any exchange.
    let wrong_state = callback.replace("state=", "state=x");
    let res = app
        .client
        .get(&wrong_state)
        .header("Cookie", &flow_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .client
        .get(&callback)
        .header("Cookie", &flow_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin");
    let session = cookies_of(&res)
        .into_iter()
        .find(|c| c.starts_with("payload-token="))
        .expect("session cookie");
    let res = app
        .client
        .get(app.url("/admin"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Fashionista"),
        "the Keycloak tenant admin works in its tenant"
    );
    // The just-in-time user exists, as for a Bearer token on the API.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'kc-admin@fashionista.test'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    app.stop().await;
    front.abort();
}
