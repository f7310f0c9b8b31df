//! A 20 MB upload streams through the server: the process's peak RSS grows by far less than the
//! file (the client here streams too, generating the bytes as it writes them).

mod common;

use common::media::BOUNDARY;
use common::{json, TestApp, FASHIONISTA};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FILE_BYTES: usize = 20 * 1024 * 1024;

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// The file's bytes at `offset`: a PDF header, then a repeating pattern (no zero pages).
fn byte_at(offset: usize) -> u8 {
    const HEAD: &[u8] = b"%PDF-1.7\n";
    if offset < HEAD.len() {
        HEAD[offset]
    } else {
        (offset % 251) as u8
    }
}

/// Streams a multipart upload over a raw connection, 64 KiB at a time; returns the response.
async fn streamed_upload(app: &TestApp, token: &str) -> (u16, serde_json::Value, String) {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"_payload\"\r\n\r\n{{\"alt\":\"big\"}}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let length = head.len() + FILE_BYTES + tail.len();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "POST /api/media HTTP/1.1\r\nHost: {}\r\nAuthorization: JWT {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\
         Connection: close\r\n\r\n{head}",
        app.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut offset = 0;
    while offset < FILE_BYTES {
        let n = chunk.len().min(FILE_BYTES - offset);
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = byte_at(offset + i);
        }
        hasher.update(&chunk[..n]);
        stream.write_all(&chunk[..n]).await.unwrap();
        offset += n;
    }
    stream.write_all(tail.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    // The JSON body may be chunked; take the object between the first `{` and the last `}`.
    let json_text = &body[body.find('{').unwrap_or(0)..=body.rfind('}').unwrap_or(0)];
    (
        status,
        serde_json::from_str(json_text).unwrap_or(serde_json::Value::Null),
        hex::encode(hasher.finalize()),
    )
}

#[tokio::test]
async fn a_20_mb_upload_streams_with_flat_rss() {
    let dir = std::env::temp_dir().join(format!("cityos-media-{}", uuid::Uuid::new_v4()));
    let url = common::fresh_database().await;
    let app = TestApp::spawn_on(
        &url,
        &[
            ("MEDIA_DIR", &dir.to_string_lossy()),
            ("MEDIA_MAX_BYTES", "30000000"),
            ("REQUEST_TIMEOUT_SECONDS", "120"),
        ],
    )
    .await;
    let editor = app
        .member("ed@fashionista.test", FASHIONISTA, &["content_editor"])
        .await;

    // Reset the peak (VmHWM) to the current RSS, then upload.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset peak RSS");
    let before = status_kb("VmRSS:");
    let (status, body, sent_sha) = streamed_upload(&app, &editor).await;
    let peak = status_kb("VmHWM:");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["doc"]["filesize"], FILE_BYTES);
    assert_eq!(body["doc"]["mimeType"], "application/pdf");
    let growth_kb = peak.saturating_sub(before);
    eprintln!("peak RSS growth during the upload: {growth_kb} KiB (before {before} KiB)");
    assert!(
        growth_kb < 8 * 1024,
        "peak RSS grew by {growth_kb} KiB for a {} KiB upload",
        FILE_BYTES / 1024
    );

    // The stored file is the sent file (read back as a stream, hashed chunk by chunk).
    let stored: Option<String> = sqlx::query_scalar("SELECT sha256 FROM media")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.as_deref().map(str::trim), Some(sent_sha.as_str()));
    let path = body["doc"]["url"].as_str().unwrap();
    let path = &path[path.find("/api/").unwrap()..];
    let mut res = app
        .client
        .get(app.url(path))
        .header("Authorization", format!("JWT {editor}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut hasher = Sha256::new();
    let mut total = 0;
    while let Some(chunk) = res.chunk().await.unwrap() {
        total += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(total, FILE_BYTES);
    assert_eq!(hex::encode(hasher.finalize()), sent_sha);
    let (status, _) = json(app.get_as("/api/media?depth=0", &editor).await).await;
    assert_eq!(status, 200);
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
