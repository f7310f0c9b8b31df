//! Local authentication on `users`: login, me, refresh, logout, lockout, bad tokens.

mod common;

use common::{json, same_keys, sample, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn login_me_refresh_logout() {
    let app = TestApp::spawn().await;
    let res = app
        .send(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
        )
        .await;
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("payload-token=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && cookie.contains("Path=/")
    );
    let (status, body) = json(res).await;
    assert_eq!(status, 200);
    assert!(same_keys(&body, &sample("login.json")));
    assert_eq!(body["message"], "Authentication Passed");
    assert_eq!(body["user"]["_strategy"], "local-jwt");
    assert_eq!(body["user"]["collection"], "users");
    assert!(body["user"].get("password").is_none() && !body.to_string().contains("argon2"));
    let token = body["token"].as_str().unwrap().to_string();

    let (status, me) = json(app.get_as("/api/users/me", &token).await).await;
    assert_eq!(status, 200);
    assert!(same_keys(&me, &sample("me.json")), "{me}");
    assert_eq!(me["user"]["email"], ADMIN_EMAIL);
    assert_eq!(me["token"], token.as_str());
    assert_eq!(
        (
            me["collection"].clone(),
            me["strategy"].clone(),
            me["message"].clone()
        ),
        (json!("users"), json!("local-jwt"), json!("Account"))
    );

    // The cookie authenticates too (same-origin requests).
    let jwt = cookie.split(';').next().unwrap();
    let (_, me_cookie) = json(
        app.client
            .get(app.url("/api/users/me"))
            .header("Cookie", jwt)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me_cookie["user"]["email"], ADMIN_EMAIL);
    let (_, cross) = json(
        app.client
            .get(app.url("/api/users/me"))
            .header("Cookie", jwt)
            .header("Sec-Fetch-Site", "cross-site")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(cross["user"], json!(null), "cross-site cookie ignored (CSRF)");

    let (status, refreshed) = json(
        app.send(Method::POST, "/api/users/refresh-token", Some(&token), None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(same_keys(&refreshed, &sample("refresh-token.json")));
    let new_token = refreshed["refreshedToken"].as_str().unwrap().to_string();
    assert_eq!(app.get_as("/api/users", &new_token).await.status(), 200);

    let (status, out) = json(
        app.send(Method::POST, "/api/users/logout", Some(&new_token), None)
            .await,
    )
    .await;
    assert_eq!((status, out), (200, sample("logout.json")));
    let (_, after) = json(app.get_as("/api/users/me", &new_token).await).await;
    assert_eq!(
        after,
        sample("me-unauthenticated.json"),
        "a revoked session is anonymous"
    );
    assert_eq!(app.get_as("/api/users", &new_token).await.status(), 403);
    let (status, body) = json(app.send(Method::POST, "/api/users/logout", None, None).await).await;
    assert_eq!((status, body), (400, json!({"errors": [{"message": "No User"}]})));
    let (status, _) = json(
        app.send(Method::POST, "/api/users/refresh-token", None, None)
            .await,
    )
    .await;
    assert_eq!(status, 403);

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_logs WHERE collection = 'auth' ORDER BY created_at")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(actions, vec!["login", "logout"]);
}

#[tokio::test]
async fn wrong_passwords_lock_the_account() {
    let app = TestApp::spawn().await;
    let wrong = json!({"email": ADMIN_EMAIL, "password": "wrong"});
    for _ in 0..5 {
        let (status, body) = json(
            app.send(Method::POST, "/api/users/login", None, Some(wrong.clone()))
                .await,
        )
        .await;
        assert_eq!((status, body), (401, sample("login-wrong-password.json")));
    }
    let right = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
    let (status, body) = json(
        app.send(Method::POST, "/api/users/login", None, Some(right))
            .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["errors"][0]["message"],
        "This user is locked due to having too many failed login attempts."
    );
    let (status, body) = json(
        app.send(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"email": "nobody@x.sa", "password": "x"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (401, sample("login-wrong-password.json")),
        "unknown email: same answer"
    );
    let (status, body) = json(
        app.send(Method::POST, "/api/users/login", None, Some(json!({})))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["name"], "ValidationError");
}

#[tokio::test]
async fn tampered_or_expired_tokens_are_anonymous() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in [tampered.as_str(), "not-a-jwt"] {
        let (status, body) = json(app.get_as("/api/users", bad).await).await;
        assert_eq!(
            (status, body),
            (403, sample("forbidden-users-list-unauthenticated.json"))
        );
    }
    // A token signed with the right key but expired.
    let claims: serde_json::Value = {
        let payload = token.split('.').nth(1).unwrap();
        let bytes = cityos::util::base64url_decode(payload).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let digest = cityos::util::sha256_hex(b"test-payload-secret-0123456789abcdef");
    let key = jsonwebtoken::EncodingKey::from_secret(&digest.as_bytes()[..32]);
    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_i64().unwrap() - 10);
    let expired = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &expired, &key).unwrap();
    assert_eq!(app.get_as("/api/users", &expired).await.status(), 403);
    // The same claims, fresh: accepted (so the key derivation is Payload's).
    let fresh = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
    assert_eq!(app.get_as("/api/users", &fresh).await.status(), 200);
}

#[tokio::test]
async fn users_see_their_own_sessions_and_nobody_elses() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (_, me) = json(app.get_as("/api/users/me", &token).await).await;
    let sessions = me["user"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{me}");
    assert!(
        sessions[0]["id"].is_string()
            && sessions[0]["expiresAt"].is_string()
            && sessions[0]["createdAt"].is_string()
    );

    let editor = app
        .member("sess@fashionista.sa", common::FASHIONISTA, &["content_editor"])
        .await;
    let editor_id = json(app.get_as("/api/users/me", &editor).await).await.1["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, other) = json(app.get_as(&format!("/api/users/{editor_id}"), &token).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        other["sessions"],
        json!([]),
        "an admin sees another user's sessions as []"
    );

    // Logging out removes the session from the list.
    let second = app.admin_token().await;
    let (_, out) = json(
        app.send(Method::POST, "/api/users/logout", Some(&token), None)
            .await,
    )
    .await;
    assert_eq!(out["message"], "Logout successful.");
    let (_, me) = json(app.get_as("/api/users/me", &second).await).await;
    assert_eq!(me["user"]["sessions"].as_array().unwrap().len(), 1);
}
