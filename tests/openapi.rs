//! The OpenAPI document is generated from the declarations and valid by a real validator, and
//! `/api/access` reports the caller's permissions in Payload's shape.

mod common;

use common::{json, same_keys, sample, TestApp};

#[tokio::test]
async fn openapi_document_is_valid_openapi_3_1() {
    let app = TestApp::spawn().await;
    let (status, doc) = json(app.get("/api/openapi.json").await).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for slug in ["countries", "pages", "audit-logs", "integration-endpoints"] {
        assert!(doc["paths"][format!("/api/{slug}")]["get"].is_object(), "{slug}");
        assert!(
            doc["paths"][format!("/api/{slug}/{{id}}")]["delete"].is_object(),
            "{slug}"
        );
    }
    // Uploads: multipart create (file required), multipart or JSON update, the file routes.
    let media = &doc["paths"]["/api/media"]["post"]["requestBody"]["content"];
    assert_eq!(media["multipart/form-data"]["schema"]["required"][0], "file");
    let update = &doc["paths"]["/api/media/{id}"]["patch"]["requestBody"]["content"];
    assert!(update["multipart/form-data"].is_object() && update["application/json"].is_object());
    assert!(doc["paths"]["/api/media/file/{tenant}/{filename}"]["get"].is_object());
    assert!(doc["paths"]["/api/pages"]["post"]["requestBody"]["content"]["multipart/form-data"].is_null());
    let path = std::env::temp_dir().join(format!("cityos-openapi-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    // openapi-spec-validator (PyPI), installed by `./run test`.
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn access_reports_permissions_per_collection() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, body) = json(app.get_as("/api/access", &admin).await).await;
    assert_eq!(status, 200);
    assert!(same_keys(&body, &sample("access-admin.json")));
    assert_eq!(body["canAccessAdmin"], true);
    assert_eq!(body["collections"]["pages"]["create"], true);
    assert_eq!(
        body["collections"]["audit-logs"]["create"], false,
        "nobody writes audit rows"
    );

    let editor = app
        .member("ed@fashionista.sa", common::FASHIONISTA, &["content_editor"])
        .await;
    let (_, body) = json(app.get_as("/api/access", &editor).await).await;
    assert_eq!(
        body["collections"]["pages"]["update"]["where"]["tenant"]["in"][0],
        common::FASHIONISTA
    );
    assert_eq!(body["collections"]["pages"]["delete"], false);
    assert_eq!(body["collections"]["tenants"]["create"], false);

    let (_, anon) = json(app.get("/api/access").await).await;
    assert_eq!(anon["canAccessAdmin"], false);
    assert_eq!(anon["collections"]["countries"]["read"], true);
    assert_eq!(anon["collections"]["pages"]["create"], false);
}
