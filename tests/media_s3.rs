//! Uploads stored in a real S3-compatible server (moto, `../shared/recipes/s3.sh`): the same
//! contract as on local disk, plus what only a remote store can do wrong.

mod common;

use common::media::{jpeg, pdf, png, upload, S3Server};
use common::{free_port, json, TestApp, FASHIONISTA, RIYADH_EATS};
use reqwest::Method;
use serde_json::{json, Value};

const BUCKET: &str = "cms-media";

async fn start(s3: &S3Server, extra: &[(&str, &str)]) -> TestApp {
    let url = common::fresh_database().await;
    let staging = std::env::temp_dir().join(format!("cityos-media-{}", uuid::Uuid::new_v4()));
    let mut vars: Vec<(String, String)> = s3.env(BUCKET);
    vars.push(("MEDIA_DIR".into(), staging.to_string_lossy().to_string()));
    for (k, v) in extra {
        vars.push((k.to_string(), v.to_string()));
    }
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::spawn_on(&url, &refs).await
}

/// Every key in the bucket.
async fn keys(s3: &S3Server) -> Vec<String> {
    let xml = reqwest::get(format!("{}/{BUCKET}?list-type=2", s3.endpoint))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out: Vec<String> = xml
        .split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// An object's size as the bucket lists it.
async fn object_size(s3: &S3Server, key: &str) -> Option<u64> {
    let xml = reqwest::get(format!("{}/{BUCKET}?list-type=2", s3.endpoint))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    xml.split("<Contents>").skip(1).find_map(|c| {
        let k = c.split("<Key>").nth(1)?.split("</Key>").next()?;
        (k == key).then(|| c.split("<Size>").nth(1)?.split("</Size>").next()?.parse().ok())?
    })
}

fn path_of(url: &str) -> String {
    match url.find("/api/") {
        Some(i) => url[i..].to_string(),
        None => url.to_string(),
    }
}

async fn fetch(app: &TestApp, doc: &Value, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(&path_of(doc["url"].as_str().unwrap())))
        .header("Authorization", format!("JWT {token}"))
        .send()
        .await
        .unwrap()
}

async fn media_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM media")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn create_ok(app: &TestApp, token: &str, name: &str, bytes: &[u8]) -> Value {
    let (status, body) = json(
        upload(
            app,
            Method::POST,
            "/api/media",
            Some(token),
            json!({"alt": name}),
            Some((name, bytes)),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["doc"].clone()
}

#[tokio::test]
async fn upload_fetch_replace_delete_on_s3() {
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    let app = start(&s3, &[("MEDIA_IMAGE_SIZES", "thumbnail:300x300")]).await;
    let fa = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let re = app.member("ed@riyadh.test", RIYADH_EATS, &["tenant_admin"]).await;

    let (one, two) = (png(400, 320), png(12, 12));
    let a = create_ok(&app, &fa, "logo.png", &one).await;
    let b = create_ok(&app, &re, "logo.png", &two).await;
    let a2 = create_ok(&app, &fa, "logo.png", &two).await;
    assert_eq!(
        (a["width"].as_i64(), a["height"].as_i64()),
        (Some(400), Some(320))
    );
    assert_eq!(a["filename"], "logo.png");
    assert_eq!(b["filename"], "logo.png");
    assert_eq!(a2["filename"], "logo-1.png");
    let (ida, idb, ida2) = (
        a["id"].as_str().unwrap(),
        b["id"].as_str().unwrap(),
        a2["id"].as_str().unwrap(),
    );
    // Tenant-prefixed keys: both tenants' logo.png exist side by side.
    let expected = {
        let mut k = vec![
            format!("{FASHIONISTA}/{ida}/logo.png"),
            format!("{FASHIONISTA}/{ida}/logo-300x300.png"),
            format!("{RIYADH_EATS}/{idb}/logo.png"),
            format!("{FASHIONISTA}/{ida2}/logo-1.png"),
        ];
        k.sort();
        k
    };
    assert_eq!(keys(&s3).await, expected);
    assert_eq!(
        object_size(&s3, &format!("{FASHIONISTA}/{ida}/logo.png")).await,
        Some(one.len() as u64)
    );

    // Through the API: the same bytes, and a range.
    let res = fetch(&app, &a, &fa).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().to_vec(), one);
    let res = app
        .client
        .get(app.url(&path_of(a["url"].as_str().unwrap())))
        .header("Authorization", format!("JWT {fa}"))
        .header("Range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap().to_vec(), one[one.len() - 5..].to_vec());
    let thumb = app
        .client
        .get(app.url(&path_of(a["thumbnailURL"].as_str().unwrap())))
        .header("Authorization", format!("JWT {fa}"))
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 200);
    let dims = imagesize::blob_size(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!((dims.width, dims.height), (300, 300));
    // Another tenant's file is not served.
    assert_eq!(fetch(&app, &a, &re).await.status(), 404);

    // Replace the file: new object, old ones gone.
    let new = jpeg(50, 40);
    let res = upload(
        &app,
        Method::PATCH,
        &format!("/api/media/{ida}"),
        Some(&fa),
        json!({}),
        Some(("new.jpg", &new)),
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 200, "{body}");
    let replaced = &body["doc"];
    assert_eq!(replaced["filename"], "new.jpg");
    assert_eq!(
        fetch(&app, replaced, &fa).await.bytes().await.unwrap().to_vec(),
        new
    );
    let now = keys(&s3).await;
    assert!(
        !now.iter()
            .any(|k| k.ends_with("/logo.png") && k.starts_with(FASHIONISTA)),
        "{now:?}"
    );
    assert!(!now.iter().any(|k| k.ends_with("logo-300x300.png")), "{now:?}");
    assert!(now.iter().any(|k| k.ends_with("/new.jpg")), "{now:?}");

    // Delete removes the object.
    for (id, token) in [(ida, &fa), (idb, &re), (ida2, &fa)] {
        let res = app
            .send(Method::DELETE, &format!("/api/media/{id}"), Some(token), None)
            .await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(keys(&s3).await, Vec::<String>::new());
    assert_eq!(media_rows(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn storage_down_is_503_with_no_orphan_row() {
    // Nothing listens on this port.
    let port = free_port();
    let url = common::fresh_database().await;
    let staging = std::env::temp_dir().join(format!("cityos-media-{}", uuid::Uuid::new_v4()));
    let endpoint = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_on(
        &url,
        &[
            ("MEDIA_STORAGE", "s3"),
            ("S3_ENDPOINT", &endpoint),
            ("S3_BUCKET", BUCKET),
            ("S3_ACCESS_KEY_ID", "test"),
            ("S3_SECRET_ACCESS_KEY", "test"),
            ("MEDIA_DIR", &staging.to_string_lossy()),
        ],
    )
    .await;
    let fa = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let res = upload(
        &app,
        Method::POST,
        "/api/media",
        Some(&fa),
        json!({"alt": "x"}),
        Some(("a.pdf", &pdf(3000))),
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        "Media storage is unavailable. Try again later."
    );
    assert_eq!(media_rows(&app).await, 0);
    let staged = std::fs::read_dir(staging.join(".incoming"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(staged, 0, "the staging file is gone too");
    let _ = std::fs::remove_dir_all(&staging);
}

#[tokio::test]
async fn a_missing_bucket_is_503_too_and_a_failed_commit_removes_the_object() {
    let s3 = S3Server::start().await;
    let app = start(&s3, &[("MEDIA_IMAGE_SIZES", "none")]).await;
    let fa = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    // No bucket yet.
    let res = upload(
        &app,
        Method::POST,
        "/api/media",
        Some(&fa),
        json!({"alt": "x"}),
        Some(("a.png", &png(5, 5))),
    )
    .await;
    assert_eq!(res.status(), 503);
    assert_eq!(media_rows(&app).await, 0);

    // The database refuses the row only at commit (a deferred check), after the object is stored.
    s3.create_bucket(BUCKET).await;
    sqlx::raw_sql(
        "CREATE FUNCTION test_refuse_media() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'refused at commit'; END $$; \
         CREATE CONSTRAINT TRIGGER test_refuse_media AFTER INSERT ON media \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_media();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let res = upload(
        &app,
        Method::POST,
        "/api/media",
        Some(&fa),
        json!({"alt": "x"}),
        Some(("b.png", &png(5, 5))),
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["errors"][0]["message"], "Something went wrong.");
    assert_eq!(media_rows(&app).await, 0);
    assert_eq!(
        keys(&s3).await,
        Vec::<String>::new(),
        "the stored object was removed"
    );
    sqlx::raw_sql("DROP TRIGGER test_refuse_media ON media")
        .execute(&app.pool)
        .await
        .unwrap();
    create_ok(&app, &fa, "b.png", &png(5, 5)).await;
    assert_eq!(keys(&s3).await.len(), 1);
    app.stop().await;
}
