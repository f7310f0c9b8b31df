//! "Sign in with Keycloak" in the admin over HTTP: the authorization-code flow with PKCE,
//! state and nonce, end to end against the auto-approving provider of
//! `common/oidc_provider.rs` (the browser runs the same flow in tests/admin_browser.rs).

mod common;

use common::oidc_provider::{OidcProvider, KC_BUYER, KC_TENANT_ADMIN};
use common::TestApp;

fn cookies_of(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect()
}

async fn app_for(idp: &OidcProvider) -> TestApp {
    let url = common::fresh_database().await;
    let env: Vec<(String, String)> = idp.env();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::spawn_on(&url, &env_ref).await
}

/// One round to the IdP: (flow cookie, the callback URL the IdP sends the browser to).
async fn authorize(app: &TestApp, idp: &OidcProvider) -> (String, String) {
    let res = app.get("/admin/login/keycloak").await;
    assert_eq!(res.status(), 303);
    let flow = cookies_of(&res)
        .into_iter()
        .find(|c| c.starts_with("cityos-admin-oidc="))
        .expect("flow cookie");
    let authorize = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        authorize.starts_with(&idp.issuer())
            && authorize.contains("code_challenge_method=S256")
            && authorize.contains("nonce="),
        "{authorize}"
    );
    let res = app.client.get(&authorize).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let callback = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        callback.starts_with(&app.url("/admin/login/callback")),
        "{callback}"
    );
    (flow, callback)
}

async fn callback(app: &TestApp, url: &str, cookie: &str) -> reqwest::Response {
    app.client.get(url).header("Cookie", cookie).send().await.unwrap()
}

fn signed_in(res: &reqwest::Response) -> bool {
    cookies_of(res)
        .iter()
        .any(|c| c.starts_with("payload-token=") && c.len() > "payload-token=".len())
}

#[tokio::test]
async fn keycloak_sign_in_runs_the_code_flow_with_pkce_state_and_nonce() {
    let idp = OidcProvider::start(KC_TENANT_ADMIN).await;
    let app = app_for(&idp).await;

    let login = app.get("/admin/login").await.text().await.unwrap();
    assert!(login.contains("href=\"/admin/login/keycloak\""));

    // A tampered verifier: the IdP refuses the code, no session.
    let (flow, cb) = authorize(&app, &idp).await;
    let parts: Vec<&str> = flow.split('.').collect();
    assert_eq!(parts.len(), 3, "state.nonce.verifier: {flow}");
    let forged = format!("{}.{}.{}", parts[0], parts[1], "0".repeat(64));
    let res = callback(&app, &cb, &forged).await;
    assert_eq!(res.status(), 401);
    assert!(!signed_in(&res));
    assert_eq!(idp.codes_redeemed(), 0, "the IdP refused the verifier");

    // A state that does not match the cookie's: refused before any code is redeemed.
    let (flow, cb) = authorize(&app, &idp).await;
    let res = callback(&app, &cb.replace("state=", "state=0"), &flow).await;
    assert_eq!(res.status(), 400);
    assert!(!signed_in(&res));
    let html = res.text().await.unwrap();
    assert!(html.contains("could not be verified"), "{html}");
    // No flow cookie at all (a link replayed in another browser): the same.
    let res = callback(&app, &cb, "").await;
    assert_eq!(res.status(), 400);
    assert!(!signed_in(&res));
    assert_eq!(idp.codes_redeemed(), 0);

    // A nonce that is not the one sent: the IdP issues the tokens (right verifier), but the
    // ID token names another sign-in, so nobody is signed in.
    let (flow, cb) = authorize(&app, &idp).await;
    let parts: Vec<&str> = flow.split('.').collect();
    let other_nonce = format!("{}.{}.{}", parts[0], "ab".repeat(16), parts[2]);
    let res = callback(&app, &cb, &other_nonce).await;
    assert_eq!(res.status(), 401);
    assert!(!signed_in(&res));
    assert_eq!(idp.codes_redeemed(), 1, "tokens were issued, then refused");

    // The real round signs the user in; the code cannot be used twice.
    let (flow, cb) = authorize(&app, &idp).await;
    let res = callback(&app, &cb, &flow).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin");
    let session = cookies_of(&res)
        .into_iter()
        .find(|c| c.starts_with("payload-token="))
        .expect("session cookie");
    assert!(
        cookies_of(&res).contains(&"cityos-admin-oidc=".to_string()),
        "the flow cookie is cleared"
    );
    let replay = callback(&app, &cb, &flow).await;
    assert_eq!(replay.status(), 401, "a code is redeemed once");
    assert!(!signed_in(&replay));

    let res = app
        .client
        .get(app.url("/admin"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains(&format!(
        "<span id=\"user-name\">{}</span>",
        KC_TENANT_ADMIN.name()
    )));
    assert!(html.contains(KC_TENANT_ADMIN.email));
    assert!(
        html.contains("id=\"current-tenant\">Fashionista"),
        "the Keycloak tenant admin works in its tenant"
    );
    // The just-in-time user exists, as for a Bearer token on the API, with the token's name.
    let name: String = sqlx::query_scalar("SELECT name FROM users WHERE email = $1")
        .bind(KC_TENANT_ADMIN.email)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(name, KC_TENANT_ADMIN.name());
    app.stop().await;
    idp.stop();
}

#[tokio::test]
async fn a_keycloak_user_without_an_admin_role_gets_the_no_access_page() {
    let idp = OidcProvider::start(KC_BUYER).await;
    let app = app_for(&idp).await;
    let (flow, cb) = authorize(&app, &idp).await;
    let res = callback(&app, &cb, &flow).await;
    assert_eq!(res.status(), 303);
    let session = cookies_of(&res)
        .into_iter()
        .find(|c| c.starts_with("payload-token="))
        .expect("session cookie");
    let res = app
        .client
        .get(app.url("/admin/c/pages"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let html = res.text().await.unwrap();
    assert!(html.contains("No access"), "{html}");
    assert!(html.contains(KC_BUYER.email));
    assert!(!html.contains("href=\"/admin/c/pages\""), "no navigation");
    app.stop().await;
    idp.stop();
}
