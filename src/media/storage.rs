//! Where uploaded files live: a directory on local disk or an S3-compatible bucket. Both take a
//! finished file from the staging area (so a failed upload never leaves a partial object) and
//! serve byte ranges as streams.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use axum::body::Body;

use crate::config::{MediaConfig, MediaStorageKind, S3Config};
use crate::http::error::ApiError;

/// A storage failure: missing objects are the caller's 404, everything else the operator's 503.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::NotFound => ApiError::NotFound,
            StorageError::Unavailable(cause) => {
                tracing::error!(error = %cause, "media storage failed");
                ApiError::Unavailable("Media storage is unavailable. Try again later.".into())
            }
        }
    }
}

/// Bytes `start..=end` of an object (a whole object is `0..=len-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn byte_count(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// The configured backend. An enum rather than a trait object: two backends, no boxing of
/// async methods, and `match` shows every place a third one would need.
pub enum Storage {
    Local(LocalStore),
    S3(S3Store),
}

impl Storage {
    pub fn from_config(media: &MediaConfig, s3: &S3Config) -> Storage {
        match media.storage {
            MediaStorageKind::Local => Storage::Local(LocalStore {
                root: media.dir.clone(),
            }),
            MediaStorageKind::S3 => Storage::S3(S3Store::new(s3)),
        }
    }

    /// Moves a finished staging file to `key`.
    pub async fn put_file(&self, key: &str, file: &Path, content_type: &str) -> Result<(), StorageError> {
        match self {
            Storage::Local(s) => s.put_file(key, file).await,
            Storage::S3(s) => s.put_file(key, file, content_type).await,
        }
    }

    /// A stream of the bytes in `range`.
    pub async fn get(&self, key: &str, range: ByteRange) -> Result<Body, StorageError> {
        match self {
            Storage::Local(s) => s.get(key, range).await,
            Storage::S3(s) => s.get(key, range).await,
        }
    }

    /// Removes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            Storage::Local(s) => s.delete(key).await,
            Storage::S3(s) => s.delete(key).await,
        }
    }

    /// Removes objects, logging (not failing on) the ones that could not be removed.
    pub async fn delete_all(&self, keys: &[String]) {
        for key in keys {
            if let Err(e) = self.delete(key).await {
                tracing::warn!(key = %key, error = %e, "could not remove a media object");
            }
        }
    }
}

/// Objects as files under a root directory; keys are relative paths.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        // Keys are built by the server from sanitised parts; refuse anything that could escape.
        if key.split('/').any(|p| p.is_empty() || p == "." || p == "..") || key.contains('\\') {
            return Err(StorageError::NotFound);
        }
        Ok(self.root.join(key))
    }

    async fn put_file(&self, key: &str, file: &Path) -> Result<(), StorageError> {
        let target = self.path(key)?;
        let unavailable = |e: std::io::Error| StorageError::Unavailable(format!("{}: {e}", target.display()));
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(unavailable)?;
        }
        // Staging lives under the same root, so this is an atomic rename; copy across devices.
        if tokio::fs::rename(file, &target).await.is_err() {
            tokio::fs::copy(file, &target).await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn get(&self, key: &str, range: ByteRange) -> Result<Body, StorageError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.path(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound),
            Err(e) => return Err(StorageError::Unavailable(format!("{}: {e}", path.display()))),
        };
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(range.byte_count()), 64 * 1024);
        Ok(Body::from_stream(stream))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::Unavailable(format!("{}: {e}", path.display()))),
        }
        // The object's directory (`{tenant}/{id}`) goes when it is empty.
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(())
    }
}

/// Objects in an S3 bucket (path-style addressing, so S3-compatible servers work).
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Store {
    fn new(cfg: &S3Config) -> S3Store {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let credentials = Credentials::new(
            cfg.access_key_id.clone().unwrap_or_default(),
            cfg.secret_access_key
                .as_ref()
                .map(|s| s.expose().to_string())
                .unwrap_or_default(),
            None,
            None,
            "cityos-config",
        );
        let mut builder = aws_sdk_s3::config::Builder::new()
            .behavior_version_latest()
            .http_client(http)
            .region(Region::new(
                cfg.region.clone().unwrap_or_else(|| "us-east-1".into()),
            ))
            .credentials_provider(credentials)
            .force_path_style(true)
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .build(),
            )
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(2));
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        S3Store {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: cfg.bucket.clone().unwrap_or_default(),
        }
    }

    async fn put_file(&self, key: &str, file: &Path, content_type: &str) -> Result<(), StorageError> {
        // A file-backed body: the SDK reads it in chunks, never the whole file into memory.
        let body = ByteStream::from_path(file)
            .await
            .map_err(|e| StorageError::Unavailable(format!("staging file: {e}")))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| StorageError::Unavailable(format!("put {key}: {}", sdk_error(&e))))?;
        Ok(())
    }

    async fn get(&self, key: &str, range: ByteRange) -> Result<Body, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end))
            .send()
            .await
            .map_err(|e| {
                let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key());
                if missing {
                    StorageError::NotFound
                } else {
                    StorageError::Unavailable(format!("get {key}: {}", sdk_error(&e)))
                }
            })?;
        let reader = out.body.into_async_read();
        Ok(Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            reader,
            64 * 1024,
        )))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StorageError::Unavailable(format!("delete {key}: {}", sdk_error(&e))))?;
        Ok(())
    }
}

/// The SDK's error with its source chain (its `Display` alone says only "dispatch failure").
fn sdk_error(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
