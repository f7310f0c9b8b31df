//! Keycloak identities over real HTTP against the OIDC stand-in: JWKS verification and
//! rotation, refusals, role mapping, just-in-time users.

mod common;

use common::oidc::OidcStandIn;
use common::{json, TestApp, FASHIONISTA};
use reqwest::Method;
use serde_json::{json, Value};

async fn app_for(oidc: &OidcStandIn, extra: &[(&str, &str)]) -> TestApp {
    let url = common::fresh_database().await;
    let mut env: Vec<(String, String)> = oidc.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::spawn_on(&url, &env_ref).await
}

fn bearer(app: &TestApp, path: &str, token: &str) -> reqwest::RequestBuilder {
    app.client
        .get(app.url(path))
        .header("Authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn valid_tokens_create_one_user_and_refusals_are_401() {
    let oidc = OidcStandIn::start().await;
    let app = app_for(&oidc, &[]).await;
    let token = oidc
        .mint(json!({"sub": "kc-user-1", "email": "Layla@Fashionista.SA", "username": "layla"}))
        .await;
    let (status, me) = json(bearer(&app, "/api/users/me", &token).send().await.unwrap()).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["email"], "layla@fashionista.sa");
    assert_eq!(me["strategy"], "keycloak");
    assert_eq!(me["user"]["externalAuthProvider"], "keycloak");
    assert_eq!(me["user"]["externalUserId"], "kc-user-1");

    // Clock tolerance 30 s: expired 10 s ago passes, 120 s ago does not; nbf in the future fails.
    let recent = oidc.mint(json!({"sub": "kc-user-1", "ttl": -10})).await;
    assert_eq!(
        bearer(&app, "/api/users/me", &recent)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let cases = vec![
        (
            "expired",
            oidc.mint(json!({"sub": "kc-user-1", "ttl": -120})).await,
            "The token has expired.",
        ),
        (
            "nbf",
            oidc.mint(json!({"sub": "kc-user-1", "nbf": 300})).await,
            "The token is not valid yet.",
        ),
        (
            "aud",
            oidc.mint(json!({"sub": "kc-user-1", "claims": {"aud": "account"}}))
                .await,
            "The token's audience is not accepted.",
        ),
        (
            "id token",
            oidc.mint(json!({"sub": "kc-user-1", "claims": {"typ": "ID"}}))
                .await,
            "Only access tokens are accepted.",
        ),
    ];
    for (name, token, message) in cases {
        let res = bearer(&app, "/api/users/me", &token).send().await.unwrap();
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "{name}"
        );
        let (status, body) = json(res).await;
        assert_eq!(
            (status, body["errors"][0]["message"].clone()),
            (401, json!(message)),
            "{name}"
        );
    }

    // Tampered payload: same signature, another email.
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&cityos::util::base64url_decode(parts[1]).unwrap()).unwrap();
    payload["email"] = json!("mallory@evil.test");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        cityos::util::base64url_encode(payload.to_string().as_bytes()),
        parts[2]
    );
    let (status, body) = json(bearer(&app, "/api/users/me", &tampered).send().await.unwrap()).await;
    assert_eq!(
        (status, body["errors"][0]["message"].clone()),
        (401, json!("The token's signature is invalid."))
    );

    // alg none, and HS256 "signed" with the public key (algorithm confusion).
    let none = format!(
        "{}.{}.",
        cityos::util::base64url_encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let jwks: Value = reqwest::get(format!("{}/protocol/openid-connect/certs", oidc.issuer()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public = jwks["keys"][0].to_string();
    let confused = {
        use hmac::Mac;
        let kid = jwks["keys"][0]["kid"].as_str().unwrap();
        let head = cityos::util::base64url_encode(
            json!({"alg": "HS256", "typ": "JWT", "kid": kid})
                .to_string()
                .as_bytes(),
        );
        let signing_input = format!("{head}.{}", parts[1]);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(public.as_bytes()).unwrap();
        mac.update(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            cityos::util::base64url_encode(&mac.finalize().into_bytes())
        )
    };
    for bad in [none, confused] {
        let (status, body) = json(bearer(&app, "/api/users/me", &bad).send().await.unwrap()).await;
        assert_eq!(
            (status, body["errors"][0]["message"].clone()),
            (401, json!("The token's algorithm is not allowed."))
        );
    }

    // Another issuer (signed by a key we know, even): refused.
    let other = oidc.mint(json!({"realm": "other", "sub": "x"})).await;
    let (status, body) = json(bearer(&app, "/api/users/me", &other).send().await.unwrap()).await;
    assert_eq!(
        (status, body["errors"][0]["message"].clone()),
        (401, json!("The token's issuer is not accepted."))
    );
    // A local Payload token still works next to Keycloak.
    let local = app.admin_token().await;
    let (_, me) = json(app.get_as("/api/users/me", &local).await).await;
    assert_eq!(me["strategy"], "local-jwt");

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE external_user_id = 'kc-user-1'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn rotation_unknown_kids_and_an_unreachable_keycloak() {
    let mut oidc = OidcStandIn::start().await;
    let app = app_for(&oidc, &[]).await;
    let old = oidc
        .mint(json!({"sub": "kc-rot", "email": "kc-rot@example.sa"}))
        .await;
    assert_eq!(
        bearer(&app, "/api/users/me", &old).send().await.unwrap().status(),
        200
    );

    oidc.rotate(false).await;
    let new = oidc
        .mint(json!({"sub": "kc-rot", "email": "kc-rot@example.sa"}))
        .await;
    assert_eq!(
        bearer(&app, "/api/users/me", &new).send().await.unwrap().status(),
        200,
        "unknown kid → refresh → accepted"
    );
    assert_eq!(
        bearer(&app, "/api/users/me", &old).send().await.unwrap().status(),
        200,
        "the passive key still verifies"
    );

    // A flood of bogus kids: at most one forced refetch per 10 s.
    let before = oidc.jwks_fetches().await;
    for i in 0..100 {
        let bogus = oidc
            .mint(json!({"sub": "kc-rot", "email": "kc-rot@example.sa", "kid": format!("bogus-{i}")}))
            .await;
        let (status, body) = json(bearer(&app, "/api/users/me", &bogus).send().await.unwrap()).await;
        assert_eq!(status, 401, "{body}");
    }
    let fetched = oidc.jwks_fetches().await - before;
    assert!(fetched <= 2, "{fetched} JWKS fetches for 100 bogus kids");

    // Keycloak down: cached keys keep working.
    oidc.stop();
    assert_eq!(
        bearer(&app, "/api/users/me", &new).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn without_any_cached_key_an_unreachable_keycloak_is_a_clear_503() {
    let oidc = OidcStandIn::start().await;
    let dead = format!("http://127.0.0.1:{}/realms/cms", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let app = app_for(&oidc, &[("KEYCLOAK_ISSUER_URL", &dead)]).await;
    let token = oidc.mint(json!({"sub": "x", "claims": {"iss": dead}})).await;
    let (status, body) = json(bearer(&app, "/api/users/me", &token).send().await.unwrap()).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("signing keys are unavailable"));
}

#[tokio::test]
async fn removed_keys_stop_working_after_the_next_refresh() {
    let oidc = OidcStandIn::start().await;
    let app = app_for(&oidc, &[("KEYCLOAK_JWKS_REFRESH_SECONDS", "1")]).await;
    let old = oidc
        .mint(json!({"sub": "kc-drop", "email": "kc-drop@example.sa"}))
        .await;
    assert_eq!(
        bearer(&app, "/api/users/me", &old).send().await.unwrap().status(),
        200
    );
    oidc.rotate(true).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = bearer(&app, "/api/users/me", &old).send().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a removed key kept verifying"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let new = oidc
        .mint(json!({"sub": "kc-drop", "email": "kc-drop@example.sa"}))
        .await;
    assert_eq!(
        bearer(&app, "/api/users/me", &new).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn roles_map_to_cityos_roles_and_unknown_ones_are_ignored() {
    let oidc = OidcStandIn::start().await;
    let app = app_for(&oidc, &[("KEYCLOAK_ROLE_MAP", "cms-admin=super_admin")]).await;
    // table: token roles → what the caller may do
    let admin = oidc
        .mint(json!({"sub": "kc-admin", "email": "kc-admin@example.sa", "roles": ["cms-admin"]}))
        .await;
    assert_eq!(
        bearer(&app, "/api/users", &admin).send().await.unwrap().status(),
        200,
        "mapped super_admin"
    );
    let sa = oidc
        .mint(json!({"sub": "kc-sa", "email": "kc-sa@example.sa", "roles": ["super-admin"]}))
        .await;
    let (status, body) = json(bearer(&app, "/api/audit-logs", &sa).send().await.unwrap()).await;
    assert_eq!(status, 200, "super-admin → super_admin: {body}");
    let nobody = oidc.mint(json!({"sub": "kc-nobody", "email": "kc-nobody@example.sa", "roles": ["god", "root", "offline_access"]})).await;
    assert_eq!(
        bearer(&app, "/api/audit-logs", &nobody)
            .send()
            .await
            .unwrap()
            .status(),
        403,
        "unknown roles never elevate"
    );

    let ta = oidc.mint(json!({"sub": "kc-ta", "email": "kc-ta@example.sa", "clientRoles": {"cms-orchestrator": ["tenant-admin"]}, "tenantId": "fashionista-sa"}))
        .await;
    let res = app
        .client
        .patch(app.url(&format!("/api/tenants/{FASHIONISTA}")))
        .header("Authorization", format!("Bearer {ta}"))
        .json(&json!({"name": "Fashionista KSA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "tenant_admin of the token's tenant");
    let res = app
        .client
        .patch(app.url(&format!("/api/tenants/{}", common::RIYADH_EATS)))
        .header("Authorization", format!("Bearer {ta}"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "and of no other tenant");
    // Groups grant memberships too.
    let grp = oidc.mint(json!({"sub": "kc-grp", "email": "kc-grp@example.sa", "claims": {"groups": ["/tenants/riyadh-eats/content-editor"]}})).await;
    let res = app
        .client
        .post(app.url("/api/pages"))
        .header("Authorization", format!("Bearer {grp}"))
        .json(&json!({"title": "From a group"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["doc"]["tenant"]["handle"], "riyadh-eats");
}

#[tokio::test]
async fn twenty_concurrent_first_requests_create_one_user_and_disabled_users_are_refused() {
    let oidc = OidcStandIn::start().await;
    let app = app_for(&oidc, &[]).await;
    let token = oidc
        .mint(json!({"sub": "kc-race", "email": "race@example.sa"}))
        .await;
    let mut handles = Vec::new();
    for _ in 0..20 {
        let req = bearer(&app, "/api/users/me", &token);
        handles.push(tokio::spawn(async move { req.send().await.unwrap().status() }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 200);
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE external_user_id = 'kc-race'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    // A changed profile is updated; a disabled user is refused even with a valid token.
    let renamed = oidc
        .mint(json!({"sub": "kc-race", "email": "race2@example.sa"}))
        .await;
    let (_, me) = json(bearer(&app, "/api/users/me", &renamed).send().await.unwrap()).await;
    assert_eq!(me["user"]["email"], "race2@example.sa");
    sqlx::query("UPDATE users SET status = 'disabled' WHERE external_user_id = 'kc-race'")
        .execute(&app.pool)
        .await
        .unwrap();
    // Changed behind the server's back: the cached principal goes with the NOTIFY (milliseconds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, body) = json(bearer(&app, "/api/users/me", &renamed).send().await.unwrap()).await;
        if status == 401 {
            assert_eq!(body["errors"][0]["message"], "This account is disabled.");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a disabled user kept working"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = app.send(Method::GET, "/api/health", None, None).await;
}

#[tokio::test]
async fn payloads_bad_token_rule_still_holds_for_the_jwt_scheme() {
    let oidc = OidcStandIn::start().await;
    let app = app_for(&oidc, &[]).await;
    let (status, body) = json(app.get_as("/api/users", "not-a-jwt").await).await;
    assert_eq!(
        (status, body),
        (403, common::sample("unauthorized-bad-token.json"))
    );
    let (status, _) = json(bearer(&app, "/api/users", "not-a-jwt").send().await.unwrap()).await;
    assert_eq!(
        status, 401,
        "a malformed Bearer token is refused when Keycloak is configured"
    );
}
