//! Helpers for the upload tests: multipart bodies, generated images, an S3-compatible server.

use std::io::Cursor;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{free_port, TestApp};

pub const BOUNDARY: &str = "----cityos-test-boundary-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body: text fields, then an optional file part `(name, bytes)`.
pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    if let Some((filename, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Sends a multipart request (the SDK's shape: `file` + `_payload`).
pub async fn upload(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    payload: serde_json::Value,
    file: Option<(&str, &[u8])>,
) -> reqwest::Response {
    let payload = payload.to_string();
    let body = multipart(&[("_payload", &payload)], file);
    let mut req = app
        .client
        .request(method, app.url(path))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(t) = token {
        req = req.header("Authorization", format!("JWT {t}"));
    }
    req.send().await.expect("request")
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn pattern(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    })
}

pub fn png(w: u32, h: u32) -> Vec<u8> {
    encode(
        image::DynamicImage::ImageRgb8(pattern(w, h)),
        image::ImageFormat::Png,
    )
}

pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(
        image::DynamicImage::ImageRgb8(pattern(w, h)),
        image::ImageFormat::Jpeg,
    )
}

pub fn webp(w: u32, h: u32) -> Vec<u8> {
    encode(
        image::DynamicImage::ImageRgba8(image::DynamicImage::ImageRgb8(pattern(w, h)).to_rgba8()),
        image::ImageFormat::WebP,
    )
}

/// A small PDF-looking file of `n` bytes (sniffed as `application/pdf`).
pub fn pdf(n: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    v.resize(n.max(16), b'0');
    v
}

/// A real S3-compatible server (moto_server from `../shared/recipes/s3.sh`), one per test, on a
/// free port; stopped when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

fn recipe() -> PathBuf {
    std::env::var("S3_RECIPE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/recipes/s3.sh"))
}

/// Installs moto once (under a lock: test processes run in parallel); returns `moto_server`.
fn install() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("s3-tools");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .unwrap();
    use std::os::unix::io::AsRawFd;
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let out = Command::new("bash")
        .arg(recipe())
        .arg("install")
        .env("TOOLS_DIR", &dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("bash s3.sh install");
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_UN) };
    assert!(out.status.success(), "s3.sh install failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

impl S3Server {
    pub async fn start() -> S3Server {
        let bin = tokio::task::spawn_blocking(install).await.unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server");
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(r) = client.get(format!("{}/moto-api/", server.endpoint)).send().await {
                if r.status().is_success() {
                    return server;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("moto_server not ready on {}", server.endpoint);
    }

    /// A bucket on this server.
    pub async fn create_bucket(&self, name: &str) {
        let res = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "create bucket: {}", res.status());
    }

    /// The orchestrator's environment for this server and bucket.
    pub fn env(&self, bucket: &str) -> Vec<(String, String)> {
        vec![
            ("MEDIA_STORAGE".into(), "s3".into()),
            ("S3_ENDPOINT".into(), self.endpoint.clone()),
            ("S3_REGION".into(), "us-east-1".into()),
            ("S3_BUCKET".into(), bucket.into()),
            ("S3_ACCESS_KEY_ID".into(), "test".into()),
            ("S3_SECRET_ACCESS_KEY".into(), "test".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
