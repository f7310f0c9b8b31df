//! Uploads on local disk, as Payload's clients send them: multipart `file` + `_payload`, the
//! file URL under the document's access, tenant-prefixed names, the safety checks.

mod common;

use std::path::{Path, PathBuf};

use common::media::{jpeg, multipart, pdf, png, upload, webp, BOUNDARY};
use common::{json, TestApp, FASHIONISTA, RIYADH_EATS};
use reqwest::Method;
use serde_json::{json, Value};

struct Env {
    app: TestApp,
    dir: PathBuf,
}

async fn start(extra: &[(&str, &str)]) -> Env {
    let dir = std::env::temp_dir().join(format!("cityos-media-{}", uuid::Uuid::new_v4()));
    let url = common::fresh_database().await;
    let dir_s = dir.to_string_lossy().to_string();
    let mut vars = vec![("MEDIA_DIR", dir_s.as_str())];
    vars.extend_from_slice(extra);
    Env {
        app: TestApp::spawn_on(&url, &vars).await,
        dir,
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn media_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM media")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Every regular file under `dir` (staging included), relative.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The path part of a document's `url`.
fn url_of(doc: &Value) -> String {
    path_of(doc["url"].as_str().expect("url"))
}

fn path_of(url: &str) -> String {
    match url.find("/api/") {
        Some(i) => url[i..].to_string(),
        None => url.to_string(),
    }
}

async fn fetch(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.header("Authorization", format!("JWT {t}"));
    }
    req.send().await.unwrap()
}

async fn create_ok(app: &TestApp, token: &str, name: &str, bytes: &[u8], alt: &str) -> Value {
    let (status, body) = json(
        upload(
            app,
            Method::POST,
            "/api/media",
            Some(token),
            json!({"alt": alt}),
            Some((name, bytes)),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["doc"].clone()
}

#[tokio::test]
async fn upload_then_fetch_gives_the_same_bytes_and_payloads_document() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let editor = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let bytes = png(40, 30);
    let res = upload(
        app,
        Method::POST,
        "/api/media?depth=0",
        Some(&editor),
        json!({"alt": "Our logo", "caption": "Spring", "tags": [{"tag": "brand"}]}),
        Some(("logo.png", &bytes)),
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["message"], "Media successfully created.");
    let doc = &body["doc"];
    assert_eq!(doc["filename"], "logo.png");
    assert_eq!(doc["mimeType"], "image/png");
    assert_eq!(doc["filesize"], bytes.len());
    assert_eq!(doc["width"], 40);
    assert_eq!(doc["height"], 30);
    assert_eq!(doc["alt"], "Our logo");
    assert_eq!(doc["caption"], "Spring");
    assert_eq!(doc["tenant"], FASHIONISTA);
    assert!(
        doc.get("storageKey").is_none() && doc.get("sha256").is_none(),
        "server-only columns stay hidden"
    );
    let id = doc["id"].as_str().unwrap();
    let url = url_of(doc);
    assert_eq!(url, format!("/api/media/file/{FASHIONISTA}/logo.png"));
    assert!(
        doc["url"].as_str().unwrap().ends_with(&url),
        "absolute under APP_URL"
    );

    // Stored under the tenant's prefix and the document's id.
    assert_eq!(
        files_under(&env.dir),
        vec![format!("{FASHIONISTA}/{id}/logo.png")]
    );

    let res = fetch(app, &url, Some(&editor)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.bytes().await.unwrap().to_vec(), bytes);

    // A byte range.
    let res = app
        .client
        .get(app.url(&url))
        .header("Authorization", format!("JWT {editor}"))
        .header("Range", "bytes=8-15")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 8-15/{}", bytes.len())
    );
    assert_eq!(res.bytes().await.unwrap().to_vec(), bytes[8..16].to_vec());

    // The one-segment form works inside the tenant's context.
    let res = fetch(app, "/api/media/file/logo.png", Some(&editor)).await;
    assert_eq!(res.status(), 200);

    // The read API shows the same document with the same URL.
    let (status, read) = json(app.get_as(&format!("/api/media/{id}"), &editor).await).await;
    assert_eq!(status, 200);
    assert_eq!(url_of(&read), url);
    assert_eq!(read["filesize"], bytes.len());

    // A JSON create has no file: Payload's 400.
    let (status, body) = json(
        app.send(
            Method::POST,
            "/api/media",
            Some(&editor),
            Some(json!({"alt": "x"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["message"], "No files were uploaded.");
    assert_eq!(media_rows(app).await, 1);
}

#[tokio::test]
async fn width_and_height_for_png_jpeg_and_webp() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let admin = app.admin_token().await;
    for (name, bytes, mime, w, h) in [
        ("a.png", png(123, 45), "image/png", 123, 45),
        ("b.jpg", jpeg(640, 361), "image/jpeg", 640, 361),
        ("c.webp", webp(77, 300), "image/webp", 77, 300),
    ] {
        let res = upload(
            app,
            Method::POST,
            "/api/media?tenant=fashionista-sa",
            Some(&admin),
            json!({"alt": name}),
            Some((name, &bytes)),
        )
        .await;
        let (status, body) = json(res).await;
        assert_eq!(status, 201, "{name}: {body}");
        assert_eq!(body["doc"]["mimeType"], mime, "{name}");
        assert_eq!(body["doc"]["width"], w, "{name}");
        assert_eq!(body["doc"]["height"], h, "{name}");
    }
    // A PDF has no pixel size.
    let doc = create_ok(app, &admin, "doc.pdf", &pdf(2000), "a document").await;
    assert_eq!(doc["mimeType"], "application/pdf");
    assert!(doc["width"].is_null() && doc["height"].is_null());
}

#[tokio::test]
async fn same_name_in_two_tenants_and_a_clash_inside_one() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let fa = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let re = app.member("ed@riyadh.test", RIYADH_EATS, &["tenant_admin"]).await;
    let (one, two, three) = (png(10, 10), png(20, 20), png(30, 30));
    let a = create_ok(app, &fa, "logo.png", &one, "a").await;
    let b = create_ok(app, &re, "logo.png", &two, "b").await;
    assert_eq!(a["filename"], "logo.png");
    assert_eq!(b["filename"], "logo.png", "another tenant keeps its own name");
    assert_ne!(url_of(&a), url_of(&b));
    let a2 = create_ok(app, &fa, "logo.png", &three, "a2").await;
    assert_eq!(
        a2["filename"], "logo-1.png",
        "a clash in one tenant gets a suffix"
    );
    let a3 = create_ok(app, &fa, "logo.png", &three, "a3").await;
    assert_eq!(a3["filename"], "logo-2.png");
    // Nothing was overwritten.
    for (token, doc, bytes) in [(&fa, &a, &one), (&re, &b, &two), (&fa, &a2, &three)] {
        let res = fetch(app, &url_of(doc), Some(token)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(&res.bytes().await.unwrap().to_vec(), bytes);
    }
}

#[tokio::test]
async fn disguised_types_svg_and_traversal_names() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let editor = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let html = b"<!doctype html><script>alert(document.cookie)</script>".to_vec();
    let exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec();
    let png_bytes = png(8, 8);
    for (name, bytes) in [
        ("photo.png", &html),
        ("photo.jpg", &exe),
        ("icon.svg", &svg),
        ("invoice.pdf", &png_bytes),
    ] {
        let res = upload(
            app,
            Method::POST,
            "/api/media",
            Some(&editor),
            json!({"alt": "x"}),
            Some((name, bytes)),
        )
        .await;
        let (status, body) = json(res).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["errors"][0]["name"], "ValidationError", "{name}");
        assert_eq!(body["errors"][0]["data"]["errors"][0]["path"], "file", "{name}");
    }
    assert_eq!(media_rows(app).await, 0);
    assert!(
        files_under(&env.dir).is_empty(),
        "refused uploads leave no file: {:?}",
        files_under(&env.dir)
    );

    let doc = create_ok(app, &editor, "../../etc/passwd", &png_bytes, "t").await;
    assert_eq!(doc["filename"], "passwd.png");
    let doc2 = create_ok(app, &editor, "..\\..\\x<y>.png", &png_bytes, "t").await;
    assert_eq!(doc2["filename"], "x-y-.png");
    let files = files_under(&env.dir);
    assert_eq!(files.len(), 2);
    assert!(
        files
            .iter()
            .all(|f| f.starts_with(FASHIONISTA) && !f.contains("..")),
        "{files:?}"
    );
    let res = fetch(app, &url_of(&doc), Some(&editor)).await;
    assert_eq!(res.status(), 200);
    // A traversal in the file URL finds nothing.
    let res = fetch(
        app,
        &format!("/api/media/file/{FASHIONISTA}/..%2F..%2Fetc%2Fpasswd"),
        Some(&editor),
    )
    .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn over_the_size_limit_is_413_and_leaves_nothing() {
    let env = start(&[("MEDIA_MAX_BYTES", "5000"), ("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let editor = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let res = upload(
        app,
        Method::POST,
        "/api/media",
        Some(&editor),
        json!({"alt": "big"}),
        Some(("big.pdf", &pdf(6000))),
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["errors"][0]["message"], "Request Entity Too Large");
    assert_eq!(media_rows(app).await, 0);
    assert!(files_under(&env.dir).is_empty(), "{:?}", files_under(&env.dir));
    // Just under the limit is fine.
    create_ok(app, &editor, "ok.pdf", &pdf(4900), "ok").await;
}

#[tokio::test]
async fn delete_removes_the_object_and_patch_replaces_the_file() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let editor = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let first = png(10, 10);
    let doc = create_ok(app, &editor, "hero.png", &first, "hero").await;
    let id = doc["id"].as_str().unwrap().to_string();

    // PATCH with fields only (multipart without a file).
    let res = upload(
        app,
        Method::PATCH,
        &format!("/api/media/{id}"),
        Some(&editor),
        json!({"alt": "new alt"}),
        None,
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["doc"]["alt"], "new alt");
    assert_eq!(body["doc"]["filename"], "hero.png");

    // PATCH with a new file: new bytes, new size, the old object gone.
    let second = jpeg(64, 48);
    let res = upload(
        app,
        Method::PATCH,
        &format!("/api/media/{id}"),
        Some(&editor),
        json!({}),
        Some(("hero.jpg", &second)),
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 200, "{body}");
    let doc = &body["doc"];
    assert_eq!(doc["filename"], "hero.jpg");
    assert_eq!(doc["mimeType"], "image/jpeg");
    assert_eq!(
        (doc["width"].as_i64(), doc["height"].as_i64()),
        (Some(64), Some(48))
    );
    assert_eq!(doc["alt"], "new alt");
    let files = files_under(&env.dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("/hero.jpg"));
    let res = fetch(app, &url_of(doc), Some(&editor)).await;
    assert_eq!(res.bytes().await.unwrap().to_vec(), second);

    let (status, body) = json(
        app.send(Method::DELETE, &format!("/api/media/{id}"), Some(&editor), None)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(files_under(&env.dir).is_empty(), "{:?}", files_under(&env.dir));
    assert_eq!(fetch(app, &url_of(doc), Some(&editor)).await.status(), 404);
    assert_eq!(media_rows(app).await, 0);
}

#[tokio::test]
async fn another_tenants_media_is_not_served() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let fa = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let re = app.member("ed@riyadh.test", RIYADH_EATS, &["tenant_admin"]).await;
    let doc = create_ok(app, &fa, "secret.png", &png(9, 9), "internal").await;
    let id = doc["id"].as_str().unwrap();
    let url = url_of(&doc);
    // Another tenant's member: neither the document nor the file.
    assert_eq!(app.get_as(&format!("/api/media/{id}"), &re).await.status(), 404);
    assert_eq!(fetch(app, &url, Some(&re)).await.status(), 404);
    assert_eq!(
        fetch(app, "/api/media/file/secret.png", Some(&re)).await.status(),
        404
    );
    // Nor anonymous callers without the tenant's context.
    assert_eq!(app.get(&format!("/api/media/{id}")).await.status(), 404);
    assert_eq!(fetch(app, &url, None).await.status(), 404);
    // The other tenant cannot replace or delete it either.
    let res = upload(
        app,
        Method::PATCH,
        &format!("/api/media/{id}"),
        Some(&re),
        json!({}),
        Some(("x.png", &png(5, 5))),
    )
    .await;
    assert!(matches!(res.status().as_u16(), 403 | 404), "{}", res.status());
    let status = app
        .send(Method::DELETE, &format!("/api/media/{id}"), Some(&re), None)
        .await
        .status();
    assert!(matches!(status.as_u16(), 403 | 404), "{status}");
    // An anonymous upload is refused before the body is read.
    let res = upload(
        app,
        Method::POST,
        "/api/media",
        None,
        json!({"alt": "x"}),
        Some(("x.png", &png(5, 5))),
    )
    .await;
    assert_eq!(res.status(), 403);
    // The owner still gets the original bytes.
    assert_eq!(fetch(app, &url, Some(&fa)).await.status(), 200);
    assert_eq!(files_under(&env.dir).len(), 1);
}

#[tokio::test]
async fn storage_down_is_503_and_leaves_no_row() {
    // MEDIA_DIR under a regular file: nothing can be created there.
    let blocker = std::env::temp_dir().join(format!("cityos-blocker-{}", uuid::Uuid::new_v4()));
    std::fs::write(&blocker, b"not a directory").unwrap();
    let dir = blocker.join("media");
    let url = common::fresh_database().await;
    let app = TestApp::spawn_on(&url, &[("MEDIA_DIR", &dir.to_string_lossy())]).await;
    let editor = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let res = upload(
        &app,
        Method::POST,
        "/api/media",
        Some(&editor),
        json!({"alt": "x"}),
        Some(("a.png", &png(4, 4))),
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("storage"));
    assert_eq!(media_rows(&app).await, 0);
    let _ = std::fs::remove_file(&blocker);
}

#[tokio::test]
async fn resized_sizes_as_payload_reports_them() {
    let env = start(&[(
        "MEDIA_IMAGE_SIZES",
        "thumbnail:300x300,card:640x480,feature:1024x576",
    )])
    .await;
    let app = &env.app;
    let editor = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let doc = create_ok(app, &editor, "banner.png", &png(800, 600), "banner").await;
    let sizes = &doc["sizes"];
    assert_eq!(sizes["thumbnail"]["width"], 300);
    assert_eq!(sizes["thumbnail"]["height"], 300);
    assert_eq!(sizes["thumbnail"]["filename"], "banner-300x300.png");
    assert_eq!(sizes["thumbnail"]["mimeType"], "image/png");
    assert_eq!(sizes["card"]["filename"], "banner-640x480.png");
    for k in ["url", "width", "height", "mimeType", "filesize", "filename"] {
        assert!(
            sizes["feature"][k].is_null(),
            "a size larger than the original is skipped: {k}"
        );
    }
    assert_eq!(doc["thumbnailURL"], sizes["thumbnail"]["url"]);
    let res = fetch(
        app,
        &path_of(doc["thumbnailURL"].as_str().unwrap()),
        Some(&editor),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let thumb = res.bytes().await.unwrap().to_vec();
    assert_eq!(
        thumb.len() as u64,
        sizes["thumbnail"]["filesize"].as_u64().unwrap()
    );
    let dims = imagesize::blob_size(&thumb).unwrap();
    assert_eq!((dims.width, dims.height), (300, 300));
    assert_eq!(files_under(&env.dir).len(), 3);
    // The admin's media picker: images of the tenant, with their thumbnails.
    create_ok(app, &editor, "manual.pdf", &pdf(500), "manual").await;
    let (status, list) = json(
        app.get_as("/api/media?where[mimeType][like]=image&depth=0", &editor)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["totalDocs"], 1);
    assert_eq!(list["docs"][0]["thumbnailURL"], doc["thumbnailURL"]);
    // Deleting the document removes every variant.
    let id = doc["id"].as_str().unwrap();
    assert_eq!(
        app.send(Method::DELETE, &format!("/api/media/{id}"), Some(&editor), None)
            .await
            .status(),
        200
    );
    assert_eq!(
        files_under(&env.dir).len(),
        1,
        "only the PDF is left: {:?}",
        files_under(&env.dir)
    );
}

#[tokio::test]
async fn public_media_is_served_to_everyone() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let admin = app.admin_token().await;
    let bytes = png(3, 3);
    // A super admin without a tenant context uploads platform-wide (public) media.
    let doc = create_ok(app, &admin, "brand.png", &bytes, "brand").await;
    assert!(doc["tenant"].is_null(), "{doc}");
    assert_eq!(url_of(&doc), "/api/media/file/brand.png");
    assert!(files_under(&env.dir)[0].starts_with("public/"));
    let res = fetch(app, "/api/media/file/brand.png", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().to_vec(), bytes);
    // A tenant member may not create public media.
    let editor = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let res = upload(
        app,
        Method::POST,
        "/api/media",
        Some(&editor),
        json!({"alt": "x", "tenant": null}),
        Some(("p.png", &bytes)),
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["data"]["errors"][0]["path"], "tenant");
    assert_eq!(files_under(&env.dir).len(), 1);
}

#[tokio::test]
async fn plain_form_fields_are_accepted_and_a_missing_file_is_400() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let editor = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let bytes = png(6, 6);
    let body = multipart(&[("alt", "from a form field")], Some(("f.png", &bytes)));
    let res = app
        .client
        .post(app.url("/api/media"))
        .header("Authorization", format!("JWT {editor}"))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["doc"]["alt"], "from a form field");
    // Required fields are the engine's validation, as for any collection.
    let res = upload(
        app,
        Method::POST,
        "/api/media",
        Some(&editor),
        json!({}),
        Some(("g.png", &bytes)),
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["data"]["errors"][0]["path"], "alt");
    let res = upload(
        app,
        Method::POST,
        "/api/media",
        Some(&editor),
        json!({"alt": "x"}),
        None,
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["message"], "No files were uploaded.");
    assert_eq!(media_rows(app).await, 1);
    assert_eq!(files_under(&env.dir).len(), 1, "{:?}", files_under(&env.dir));
}

#[tokio::test]
async fn concurrent_uploads_of_one_name_get_distinct_names() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let editor = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;
    let bytes = png(16, 16);
    let uploads = (0..6).map(|i| {
        let (editor, bytes) = (editor.clone(), bytes.clone());
        async move {
            let res = upload(
                app,
                Method::POST,
                "/api/media",
                Some(&editor),
                json!({"alt": format!("n{i}")}),
                Some(("same.png", &bytes)),
            )
            .await;
            json(res).await
        }
    });
    let results = futures_util::future::join_all(uploads).await;
    let mut names: Vec<String> = results
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 201, "{body}");
            body["doc"]["filename"].as_str().unwrap().to_string()
        })
        .collect();
    names.sort();
    let mut expected = vec!["same.png".to_string()];
    expected.extend((1..6).map(|n| format!("same-{n}.png")));
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(files_under(&env.dir).len(), 6);
}

#[tokio::test]
async fn the_file_part_may_come_before_the_payload() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "none")]).await;
    let app = &env.app;
    let admin = app.admin_token().await;
    let bytes = png(7, 5);
    // The file first, then `_payload` naming the tenant: the key still gets the tenant's prefix.
    let mut body = multipart(&[], Some(("first.png", &bytes)));
    body.truncate(body.len() - format!("--{BOUNDARY}--\r\n").len());
    let payload = json!({"alt": "late payload", "tenant": RIYADH_EATS}).to_string();
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"_payload\"\r\n\r\n{payload}\r\n--{BOUNDARY}--\r\n")
            .as_bytes(),
    );
    let res = app
        .client
        .post(app.url("/api/media"))
        .header("Authorization", format!("JWT {admin}"))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["doc"]["tenant"]["id"], RIYADH_EATS,
        "create populates by default"
    );
    assert_eq!(
        url_of(&body["doc"]),
        format!("/api/media/file/{RIYADH_EATS}/first.png")
    );
    assert_eq!(body["doc"]["alt"], "late payload");
    let files = files_under(&env.dir);
    assert!(files.len() == 1 && files[0].starts_with(RIYADH_EATS), "{files:?}");
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_files() {
    let env = start(&[("MEDIA_IMAGE_SIZES", "thumbnail:8x8")]).await;
    let app = &env.app;
    let admin = app.admin_token().await;
    let (status, tenant) = json(
        app.send(
            Method::POST,
            "/api/tenants?depth=0",
            Some(&admin),
            Some(json!({"handle": "short-lived", "name": "Short Lived", "country": common::SAUDI, "status": "active"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{tenant}");
    let tenant_id = tenant["doc"]["id"].as_str().unwrap().to_string();
    let res = upload(
        app,
        Method::POST,
        "/api/media?tenant=short-lived",
        Some(&admin),
        json!({"alt": "a"}),
        Some(("a.png", &png(20, 20))),
    )
    .await;
    assert_eq!(res.status(), 201);
    let kept = create_ok(app, &admin, "kept.png", &png(4, 4), "public").await;
    assert_eq!(
        files_under(&env.dir).len(),
        3,
        "original + thumbnail + the public file"
    );
    let res = app
        .send(
            Method::DELETE,
            &format!("/api/tenants/{tenant_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let files = files_under(&env.dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with("public/"));
    assert_eq!(fetch(app, &url_of(&kept), None).await.status(), 200);
}
