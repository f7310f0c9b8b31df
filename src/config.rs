//! Typed settings, read once at start from the environment (and an optional `.env`).
//!
//! Every variable name of the original orchestrator's `.env` keeps its meaning, so an existing
//! file works unchanged. Problems are collected, not raised one by one: a bad start lists every
//! variable that is wrong, one line each, and never prints a secret's value.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

/// Minimum length of a production secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Deployment mode (`APP_ENV`, alias `NODE_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Test,
    Production,
}

impl AppEnv {
    pub fn is_production(self) -> bool {
        self == AppEnv::Production
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Test => "test",
            AppEnv::Production => "production",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A secret setting: `Debug` shows `[redacted]`, the value is reachable only through `expose`.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }
    /// The secret's value; call only where the value is used, never for logging.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The four server secrets; required in production, generated once in development.
#[derive(Debug, Clone)]
pub struct ServerSecrets {
    /// `PAYLOAD_SECRET`: signs local-login JWTs and derives the field-encryption key.
    pub payload_secret: Secret,
    /// `CITYOS_SIGNATURE_SECRET`: verifies the gateway's signed tenant headers.
    pub signature_secret: Secret,
    /// `CRON_SECRET`: bearer secret of `/api/cron/*`.
    pub cron_secret: Secret,
    /// `API_KEY_HASH_SALT`: HMAC key under which API keys are stored.
    pub api_key_hash_salt: Secret,
}

#[derive(Debug, Clone, Default)]
pub struct KeycloakConfig {
    /// `KEYCLOAK_ROLE_MAP`: extra `keycloak-role=cityos_role` pairs.
    pub role_map: Option<String>,
    /// `KEYCLOAK_JWKS_REFRESH_SECONDS`: background refresh period of the key set.
    pub jwks_refresh_secs: u64,
    pub issuer_url: Option<String>,
    pub jwks_url: Option<String>,
    pub client_id: Option<String>,
    pub audience: Option<String>,
    pub clock_tolerance_secs: u64,
}

#[derive(Debug, Clone, Default)]
pub struct CerbosConfig {
    pub pdp_url: Option<String>,
    pub api_key: Option<Secret>,
    pub request_timeout_ms: u64,
    /// When the PDP cannot be reached: decide with the built-in evaluator (false) or refuse (true).
    pub fail_closed: bool,
    /// How long a PDP plan is reused for the same principal, kind and action (0 = never).
    pub plan_cache_ms: u64,
    /// Read the fallback's policies from here instead of the copy compiled into the binary.
    pub policy_dir: Option<std::path::PathBuf>,
}

/// The integration plane's queue and scheduler (`SYNC_*`, `SCHEDULER_*`, `MEDUSA_REQUEST_TIMEOUT_MS`).
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// `SYNC_WORKERS`: background workers in this process (0 = none; cron routes still work).
    pub workers: usize,
    /// `SYNC_POLL_INTERVAL_MS`: how often an idle worker looks without a NOTIFY wake-up.
    pub poll_ms: u64,
    /// `SYNC_LEASE_SECONDS`: a claimed job returns to the queue when its lease is not renewed.
    pub lease_secs: u64,
    /// `SYNC_RETRY_BASE_MS` / `SYNC_RETRY_MAX_MS`: backoff = min(2^attempts × base, max) ± 20 %.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// `SYNC_MAX_ATTEMPTS`: attempts before a job is `dead` (jobs made by the server).
    pub max_attempts: i32,
    /// `SYNC_CLAIM_BATCH`: jobs a worker claims at once; the batch it starts from and returns to.
    pub claim_batch: i64,
    /// `SYNC_CLAIM_BATCH_MAX`: how far a worker's batch grows while the queue is deep and its
    /// jobs finish fast.
    pub claim_batch_max: i64,
    /// `SYNC_WORKER_CONCURRENCY`: jobs of one worker running at once (outbound requests).
    pub worker_concurrency: usize,
    /// `SYNC_DRAIN_SECONDS`: at shutdown, how long workers may finish the jobs they run.
    pub drain_secs: u64,
    /// `CRON_BATCH_SIZE`: jobs one cron call processes at most.
    pub cron_batch: i64,
    /// `MEDUSA_REQUEST_TIMEOUT_MS`: whole-request timeout of outbound calls (connect: 2 s).
    pub http_timeout_ms: u64,
    /// `SCHEDULER_ENABLED`: run the cron work on intervals inside this process.
    pub scheduler_enabled: bool,
    /// `SCHEDULER_SYNC_INTERVAL_SECONDS`, `SCHEDULER_WEBHOOK_RETRY_INTERVAL_SECONDS`,
    /// `SCHEDULER_RECONCILE_INTERVAL_SECONDS`.
    pub sync_interval_secs: u64,
    pub webhook_retry_interval_secs: u64,
    pub reconcile_interval_secs: u64,
    /// `WEBHOOK_MAX_AGE_HOURS`: Fleetbase `created_at` / ERPNext `modified` older than this are refused.
    pub webhook_max_age_hours: u64,
}

/// Connection settings of one external system (Medusa, Fleetbase, ERPNext).
#[derive(Debug, Clone, Default)]
pub struct IntegrationConfig {
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub webhook_secret: Option<Secret>,
}

#[derive(Debug, Clone, Default)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
}

/// Where uploaded files live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaStorageKind {
    Local,
    S3,
}

/// One configured image size (`thumbnail:300x300`), cropped around the centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSize {
    pub name: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub storage: MediaStorageKind,
    /// Local files (and the staging area of every upload).
    pub dir: PathBuf,
    /// Largest accepted file, in bytes (413 above).
    pub max_bytes: u64,
    pub image_sizes: Vec<ImageSize>,
}

/// `name:WxH,name:WxH`; an empty list or `none` disables resized variants.
pub fn parse_image_sizes(raw: &str) -> Result<Vec<ImageSize>, String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out: Vec<ImageSize> = Vec::new();
    for item in raw.split(',') {
        let item = item.trim();
        let parsed = item.split_once(':').and_then(|(name, dims)| {
            let (w, h) = dims.split_once('x')?;
            let (width, height) = (w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?);
            let name = name.trim();
            let ok_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            (ok_name && (1..=10_000).contains(&width) && (1..=10_000).contains(&height)).then(|| ImageSize {
                name: name.to_string(),
                width,
                height,
            })
        });
        match parsed {
            Some(size) if !out.iter().any(|s| s.name == size.name) => out.push(size),
            _ => {
                return Err(format!(
                    "{item:?} is not name:WIDTHxHEIGHT (unique names, 1-10000 px)"
                ))
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct Config {
    pub env: AppEnv,
    pub host: IpAddr,
    pub port: u16,
    pub app_url: String,
    /// External PostgreSQL; `None` starts the embedded cluster under `data_dir`.
    pub database_url: Option<Secret>,
    pub data_dir: PathBuf,
    /// Where `initdb`/`pg_ctl` live; found automatically when unset.
    pub pg_bin_dir: Option<PathBuf>,
    pub database_max_connections: u32,
    pub secrets: ServerSecrets,
    /// Which secrets were generated for development (named in a warning at start).
    pub generated_secrets: Vec<&'static str>,
    pub keycloak: KeycloakConfig,
    pub cerbos: CerbosConfig,
    pub medusa: IntegrationConfig,
    pub fleetbase: IntegrationConfig,
    pub erpnext: IntegrationConfig,
    pub webhook_replay_window_secs: u64,
    /// `WEBHOOK_INGEST_BATCH`: accepted deliveries written by one statement at most (group
    /// commit; 1 writes each delivery alone).
    pub webhook_ingest_batch: usize,
    /// `WEBHOOK_INGEST_WRITERS`: such statements running at once.
    pub webhook_ingest_writers: usize,
    /// `CREATE_BATCH`: REST creates in one scope committed by one transaction at most (group
    /// commit, `db::group_commit`; 1 writes each create in the request's own transaction).
    pub create_batch: usize,
    /// `CREATE_WRITERS`: such transactions running at once.
    pub create_writers: usize,
    /// The job queue, workers, scheduler and outbound HTTP of the integration plane.
    pub jobs: JobsConfig,
    pub s3: S3Config,
    pub media: MediaConfig,
    pub otel_endpoint: Option<String>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    /// How long anonymous read responses are reused (0 = never); see collections::public_cache.
    pub public_cache_ttl_ms: u64,
    pub request_timeout_secs: u64,
    pub cors_origins: Vec<String>,
    /// `CITYOS_BASE_DOMAINS`: hosts under which tenants' `subdomains` live.
    pub base_domains: Vec<String>,
    pub seed_admin_email: String,
    pub seed_admin_password: Secret,
    /// How often API-key usage (`lastUsedAt`, `usageCount`) is written.
    pub api_key_usage_flush_secs: u64,
    /// Seed demo data when the embedded database is created (first start).
    pub seed_on_first_start: bool,
}

/// Everything wrong with the environment, one problem per entry.
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "config error: {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads variables with the aliases of the original orchestrator, collecting problems.
struct Vars<'a> {
    map: &'a HashMap<String, String>,
    errors: Vec<String>,
}

impl<'a> Vars<'a> {
    fn get(&self, name: &str) -> Option<String> {
        self.map
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn first(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| self.get(n))
    }

    fn parse<T: std::str::FromStr>(&mut self, name: &str, default: T, what: &str) -> T {
        match self.get(name) {
            None => default,
            Some(raw) => match raw.parse() {
                Ok(v) => v,
                Err(_) => {
                    self.errors.push(format!("{name}: must be {what} (got {raw:?})"));
                    default
                }
            },
        }
    }

    fn url(&mut self, name: &str) -> Option<String> {
        let raw = self.get(name)?;
        if raw.starts_with("http://") || raw.starts_with("https://") {
            Some(raw.trim_end_matches('/').to_string())
        } else {
            self.errors
                .push(format!("{name}: must be an http(s) URL (got {raw:?})"));
            None
        }
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(Secret::new)
    }

    fn bool(&mut self, name: &str, default: bool) -> bool {
        match self.get(name).as_deref() {
            None => default,
            Some("1" | "true" | "TRUE" | "yes" | "on") => true,
            Some("0" | "false" | "FALSE" | "no" | "off") => false,
            Some(other) => {
                self.errors
                    .push(format!("{name}: must be true or false (got {other:?})"));
                default
            }
        }
    }
}

impl Config {
    /// Reads `.env` (when present, without overriding the real environment), then the environment.
    pub fn load() -> Result<Config, ConfigErrors> {
        let _ = dotenvy::dotenv();
        let vars: HashMap<String, String> = std::env::vars().collect();
        Config::from_vars(&vars)
    }

    /// Builds the configuration from a variable map; the single place where settings are validated.
    pub fn from_vars(map: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
        let mut v = Vars {
            map,
            errors: Vec::new(),
        };

        let env = match v.first(&["APP_ENV", "NODE_ENV"]).as_deref() {
            None | Some("development" | "dev") => AppEnv::Development,
            Some("production" | "prod") => AppEnv::Production,
            Some("test") => AppEnv::Test,
            Some(other) => {
                v.errors.push(format!(
                    "APP_ENV: must be development, test or production (got {other:?})"
                ));
                AppEnv::Development
            }
        };

        let port: u16 = v.parse("PORT", 3001, "a port number between 0 and 65535");
        let host: IpAddr = v.parse(
            "HOST",
            IpAddr::from([0, 0, 0, 0]),
            "an IP address such as 0.0.0.0 or 127.0.0.1",
        );
        let app_url = match v.first(&["APP_URL", "NEXT_PUBLIC_APP_URL"]) {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_string()
            }
            Some(u) => {
                v.errors
                    .push(format!("APP_URL: must be an http(s) URL (got {u:?})"));
                String::new()
            }
            None => format!("http://localhost:{port}"),
        };

        let database_url = match v.get("DATABASE_URL") {
            None => None,
            Some(url) => {
                if let Err(problem) = check_database_url(&url) {
                    v.errors.push(format!("DATABASE_URL: {problem}"));
                }
                Some(Secret::new(url))
            }
        };

        let data_dir = PathBuf::from(v.get("CITYOS_DATA_DIR").unwrap_or_else(|| ".data".into()));
        let pg_bin_dir = v.get("CITYOS_PG_BIN_DIR").map(PathBuf::from);
        let database_max_connections = v.parse("DATABASE_MAX_CONNECTIONS", 16u32, "a number");

        let log_format = match v.get("LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            None if env.is_production() => LogFormat::Json,
            None => LogFormat::Text,
            Some(other) => {
                v.errors
                    .push(format!("LOG_FORMAT: must be json or text (got {other:?})"));
                LogFormat::Text
            }
        };

        let role_map = v.get("KEYCLOAK_ROLE_MAP");
        if let Err(e) = crate::auth::keycloak::RoleMap::parse(role_map.as_deref()) {
            v.errors.push(format!("KEYCLOAK_ROLE_MAP: {e}"));
        }
        let keycloak = KeycloakConfig {
            role_map,
            jwks_refresh_secs: v.parse("KEYCLOAK_JWKS_REFRESH_SECONDS", 600, "a number of seconds"),
            issuer_url: v.url("KEYCLOAK_ISSUER_URL"),
            jwks_url: v.url("KEYCLOAK_JWKS_URL"),
            client_id: v.get("KEYCLOAK_CLIENT_ID"),
            audience: v.get("KEYCLOAK_AUDIENCE"),
            clock_tolerance_secs: v.parse("AUTH_JWT_CLOCK_TOLERANCE_SECONDS", 30, "a number of seconds"),
        };
        let cerbos = CerbosConfig {
            pdp_url: v.url("CERBOS_PDP_URL"),
            api_key: v.secret("CERBOS_PDP_API_KEY"),
            request_timeout_ms: v.parse("CERBOS_REQUEST_TIMEOUT_MS", 5000, "a number of milliseconds"),
            fail_closed: match v.get("CERBOS_FAILURE_MODE").as_deref() {
                None | Some("fallback") => false,
                Some("fail-closed") => true,
                Some(other) => {
                    v.errors.push(format!(
                        "CERBOS_FAILURE_MODE: must be fallback or fail-closed (got {other:?})"
                    ));
                    false
                }
            },
            plan_cache_ms: v.parse("CERBOS_PLAN_CACHE_MS", 2000, "a number of milliseconds"),
            policy_dir: v.get("CERBOS_POLICY_DIR").map(std::path::PathBuf::from),
        };
        if let Some(dir) = &cerbos.policy_dir {
            if let Err(e) = crate::authz::policy::PolicySet::from_dir(dir) {
                v.errors.push(format!("CERBOS_POLICY_DIR: {e}"));
            }
        }
        let integration = |v: &mut Vars, prefix: &str| IntegrationConfig {
            base_url: v.url(&format!("{prefix}_BASE_URL")),
            api_key: v.secret(&format!("{prefix}_API_KEY")),
            webhook_secret: v.secret(&format!("{prefix}_WEBHOOK_SECRET")),
        };
        let medusa = integration(&mut v, "MEDUSA");
        let fleetbase = integration(&mut v, "FLEETBASE");
        let erpnext = integration(&mut v, "ERPNEXT");
        let s3 = S3Config {
            endpoint: v.url("S3_ENDPOINT"),
            region: v.get("S3_REGION"),
            bucket: v.get("S3_BUCKET"),
            access_key_id: v.get("S3_ACCESS_KEY_ID"),
            secret_access_key: v.secret("S3_SECRET_ACCESS_KEY"),
        };
        let storage = match v.get("MEDIA_STORAGE").as_deref() {
            None if s3.bucket.is_some() => MediaStorageKind::S3,
            None | Some("local") => MediaStorageKind::Local,
            Some("s3") => MediaStorageKind::S3,
            Some(other) => {
                v.errors
                    .push(format!("MEDIA_STORAGE: must be local or s3 (got {other:?})"));
                MediaStorageKind::Local
            }
        };
        if storage == MediaStorageKind::S3 && s3.bucket.is_none() {
            v.errors
                .push("S3_BUCKET: required when MEDIA_STORAGE is s3".to_string());
        }
        let image_sizes = match parse_image_sizes(
            &v.get("MEDIA_IMAGE_SIZES")
                .unwrap_or_else(|| "thumbnail:300x300,card:640x480,feature:1024x576".into()),
        ) {
            Ok(sizes) => sizes,
            Err(e) => {
                v.errors.push(format!("MEDIA_IMAGE_SIZES: {e}"));
                Vec::new()
            }
        };
        let media = MediaConfig {
            storage,
            dir: v
                .get("MEDIA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("media")),
            max_bytes: v.parse("MEDIA_MAX_BYTES", 10_000_000u64, "a number of bytes"),
            image_sizes,
        };
        let webhook_replay_window_secs = v.parse("WEBHOOK_REPLAY_WINDOW_SECONDS", 300, "a number of seconds");
        let webhook_ingest_batch = v
            .parse("WEBHOOK_INGEST_BATCH", 32usize, "a number of deliveries")
            .clamp(1, 256);
        let webhook_ingest_writers = v
            .parse("WEBHOOK_INGEST_WRITERS", 2usize, "a number of statements")
            .clamp(1, 64);
        let create_batch = v
            .parse("CREATE_BATCH", 8usize, "a number of creates")
            .clamp(1, 64);
        let create_writers = v
            .parse("CREATE_WRITERS", 4usize, "a number of transactions")
            .clamp(1, 64);
        let claim_batch = v
            .parse("SYNC_CLAIM_BATCH", 16i64, "a number of jobs")
            .clamp(1, 1000);
        let jobs = JobsConfig {
            workers: v.parse("SYNC_WORKERS", 2usize, "a number of workers"),
            poll_ms: v
                .parse("SYNC_POLL_INTERVAL_MS", 1000u64, "a number of milliseconds")
                .max(10),
            lease_secs: v.parse("SYNC_LEASE_SECONDS", 60u64, "a number of seconds").max(1),
            retry_base_ms: v.parse("SYNC_RETRY_BASE_MS", 5000u64, "a number of milliseconds"),
            retry_max_ms: v.parse("SYNC_RETRY_MAX_MS", 3_600_000u64, "a number of milliseconds"),
            max_attempts: v.parse("SYNC_MAX_ATTEMPTS", 8i32, "a number of attempts").max(1),
            claim_batch,
            claim_batch_max: v
                .parse("SYNC_CLAIM_BATCH_MAX", 256i64, "a number of jobs")
                .clamp(claim_batch, 1000),
            worker_concurrency: v
                .parse("SYNC_WORKER_CONCURRENCY", 16usize, "a number of jobs")
                .clamp(1, 1000),
            drain_secs: v.parse("SYNC_DRAIN_SECONDS", 20u64, "a number of seconds"),
            cron_batch: v
                .parse("CRON_BATCH_SIZE", 100i64, "a number of jobs")
                .clamp(1, 10_000),
            http_timeout_ms: v
                .parse("MEDUSA_REQUEST_TIMEOUT_MS", 15_000u64, "a number of milliseconds")
                .max(1),
            scheduler_enabled: v.bool("SCHEDULER_ENABLED", false),
            sync_interval_secs: v
                .parse("SCHEDULER_SYNC_INTERVAL_SECONDS", 60u64, "a number of seconds")
                .max(1),
            webhook_retry_interval_secs: v
                .parse(
                    "SCHEDULER_WEBHOOK_RETRY_INTERVAL_SECONDS",
                    300u64,
                    "a number of seconds",
                )
                .max(1),
            reconcile_interval_secs: v
                .parse(
                    "SCHEDULER_RECONCILE_INTERVAL_SECONDS",
                    86_400u64,
                    "a number of seconds",
                )
                .max(1),
            webhook_max_age_hours: v.parse("WEBHOOK_MAX_AGE_HOURS", 24u64, "a number of hours"),
        };
        let otel_endpoint = v.url("OTEL_EXPORTER_OTLP_ENDPOINT");
        let log_level = v.get("LOG_LEVEL").unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            v.errors.push(format!(
                "LOG_LEVEL: must be a level (error, warn, info, debug, trace) or a filter (got {log_level:?})"
            ));
        }
        let max_body_bytes = v.parse("MAX_BODY_BYTES", 2 * 1024 * 1024usize, "a number of bytes");
        let public_cache_ttl_ms = v.parse("PUBLIC_CACHE_TTL_MS", 1000u64, "a number of milliseconds");
        let request_timeout_secs = v.parse("REQUEST_TIMEOUT_SECONDS", 30u64, "a number of seconds");
        let cors_origins = v
            .get("CORS_ORIGINS")
            .map(|s| {
                s.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_string())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let base_domains: Vec<String> = v
            .get("CITYOS_BASE_DOMAINS")
            .map(|s| {
                s.split(',')
                    .map(|d| d.trim().trim_matches('.').to_ascii_lowercase())
                    .filter(|d| !d.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let seed_admin_email = v
            .get("SEED_ADMIN_EMAIL")
            .unwrap_or_else(|| "admin@cityos.local".into())
            .to_lowercase();
        let seed_admin_password = v
            .secret("SEED_ADMIN_PASSWORD")
            .unwrap_or_else(|| Secret::new("cityos-admin"));
        let seed_on_first_start = v.bool("CITYOS_SEED_DEMO", true);
        let api_key_usage_flush_secs = v.parse("API_KEY_USAGE_FLUSH_SECONDS", 60u64, "a number of seconds");
        // Accepted for compatibility with the original `.env`; both extensions are always created.
        let _ = v.bool("POSTGRES_ENABLE_POSTGIS", true);
        let _ = v.bool("POSTGRES_ENABLE_PGVECTOR", true);

        // Secrets: required and long in production; in development generated once under data_dir.
        const SECRET_NAMES: [&str; 4] = [
            "PAYLOAD_SECRET",
            "CITYOS_SIGNATURE_SECRET",
            "CRON_SECRET",
            "API_KEY_HASH_SALT",
        ];
        let mut values: Vec<Option<Secret>> = Vec::new();
        for name in SECRET_NAMES {
            let value = v.secret(name);
            if env.is_production() {
                match &value {
                    None => v.errors.push(format!("{name}: required in production")),
                    Some(s) if s.expose().len() < MIN_SECRET_BYTES => v.errors.push(format!(
                        "{name}: must be at least {MIN_SECRET_BYTES} bytes in production (value not shown)"
                    )),
                    Some(_) => {}
                }
            }
            values.push(value);
        }
        if !v.errors.is_empty() {
            return Err(ConfigErrors(v.errors));
        }

        let mut generated_secrets = Vec::new();
        let mut resolved = Vec::new();
        let mut dev_store: Option<DevSecretStore> = None;
        for (name, value) in SECRET_NAMES.iter().zip(values) {
            match value {
                Some(s) => resolved.push(s),
                None => {
                    let store = match &mut dev_store {
                        Some(s) => s,
                        None => dev_store.insert(
                            DevSecretStore::open(&data_dir)
                                .map_err(|e| ConfigErrors(vec![format!("CITYOS_DATA_DIR: {e}")]))?,
                        ),
                    };
                    let (secret, fresh) = store.get_or_create(name);
                    if fresh {
                        generated_secrets.push(*name);
                    }
                    resolved.push(secret);
                }
            }
        }
        if let Some(store) = dev_store {
            store
                .save()
                .map_err(|e| ConfigErrors(vec![format!("CITYOS_DATA_DIR: {e}")]))?;
        }
        let mut it = resolved.into_iter();
        let secrets = ServerSecrets {
            payload_secret: it.next().expect("four secrets"),
            signature_secret: it.next().expect("four secrets"),
            cron_secret: it.next().expect("four secrets"),
            api_key_hash_salt: it.next().expect("four secrets"),
        };

        Ok(Config {
            env,
            host,
            port,
            app_url,
            database_url,
            data_dir,
            pg_bin_dir,
            database_max_connections,
            secrets,
            generated_secrets,
            keycloak,
            cerbos,
            medusa,
            fleetbase,
            erpnext,
            webhook_replay_window_secs,
            webhook_ingest_batch,
            webhook_ingest_writers,
            create_batch,
            create_writers,
            jobs,
            s3,
            media,
            otel_endpoint,
            log_level,
            log_format,
            max_body_bytes,
            public_cache_ttl_ms,
            request_timeout_secs,
            cors_origins,
            base_domains,
            seed_admin_email,
            seed_admin_password,
            seed_on_first_start,
            api_key_usage_flush_secs,
        })
    }

    /// A human-readable listing for `cityos config check`, secrets shown only as set/unset.
    pub fn describe(&self) -> Vec<(String, String)> {
        let secret = |s: &Option<Secret>| match s {
            Some(_) => "[redacted]".to_string(),
            None => "(unset)".to_string(),
        };
        let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "(unset)".into());
        let generated = |name: &str| {
            if self.generated_secrets.contains(&name) {
                "[redacted] (generated for development)".to_string()
            } else {
                "[redacted]".to_string()
            }
        };
        vec![
            ("APP_ENV".into(), self.env.as_str().into()),
            ("HOST".into(), self.host.to_string()),
            ("PORT".into(), self.port.to_string()),
            ("APP_URL".into(), self.app_url.clone()),
            (
                "DATABASE_URL".into(),
                match &self.database_url {
                    Some(url) => redact_database_url(url.expose()),
                    None => format!(
                        "(unset: embedded PostgreSQL under {})",
                        self.data_dir.join("postgres").display()
                    ),
                },
            ),
            ("CITYOS_DATA_DIR".into(), self.data_dir.display().to_string()),
            ("PAYLOAD_SECRET".into(), generated("PAYLOAD_SECRET")),
            (
                "CITYOS_SIGNATURE_SECRET".into(),
                generated("CITYOS_SIGNATURE_SECRET"),
            ),
            ("CRON_SECRET".into(), generated("CRON_SECRET")),
            ("API_KEY_HASH_SALT".into(), generated("API_KEY_HASH_SALT")),
            ("KEYCLOAK_ISSUER_URL".into(), opt(&self.keycloak.issuer_url)),
            ("KEYCLOAK_JWKS_URL".into(), opt(&self.keycloak.jwks_url)),
            ("KEYCLOAK_CLIENT_ID".into(), opt(&self.keycloak.client_id)),
            ("KEYCLOAK_AUDIENCE".into(), opt(&self.keycloak.audience)),
            ("KEYCLOAK_ROLE_MAP".into(), opt(&self.keycloak.role_map)),
            (
                "KEYCLOAK_JWKS_REFRESH_SECONDS".into(),
                self.keycloak.jwks_refresh_secs.to_string(),
            ),
            (
                "AUTH_JWT_CLOCK_TOLERANCE_SECONDS".into(),
                self.keycloak.clock_tolerance_secs.to_string(),
            ),
            ("CERBOS_PDP_URL".into(), opt(&self.cerbos.pdp_url)),
            ("CERBOS_PDP_API_KEY".into(), secret(&self.cerbos.api_key)),
            (
                "CERBOS_REQUEST_TIMEOUT_MS".into(),
                self.cerbos.request_timeout_ms.to_string(),
            ),
            (
                "CERBOS_FAILURE_MODE".into(),
                if self.cerbos.fail_closed {
                    "fail-closed"
                } else {
                    "fallback"
                }
                .into(),
            ),
            (
                "CERBOS_PLAN_CACHE_MS".into(),
                self.cerbos.plan_cache_ms.to_string(),
            ),
            (
                "CERBOS_POLICY_DIR".into(),
                self.cerbos
                    .policy_dir
                    .as_ref()
                    .map_or("(embedded)".into(), |p| p.display().to_string()),
            ),
            ("MEDUSA_BASE_URL".into(), opt(&self.medusa.base_url)),
            ("MEDUSA_API_KEY".into(), secret(&self.medusa.api_key)),
            (
                "MEDUSA_WEBHOOK_SECRET".into(),
                secret(&self.medusa.webhook_secret),
            ),
            ("FLEETBASE_BASE_URL".into(), opt(&self.fleetbase.base_url)),
            ("FLEETBASE_API_KEY".into(), secret(&self.fleetbase.api_key)),
            (
                "FLEETBASE_WEBHOOK_SECRET".into(),
                secret(&self.fleetbase.webhook_secret),
            ),
            ("ERPNEXT_BASE_URL".into(), opt(&self.erpnext.base_url)),
            ("ERPNEXT_API_KEY".into(), secret(&self.erpnext.api_key)),
            (
                "ERPNEXT_WEBHOOK_SECRET".into(),
                secret(&self.erpnext.webhook_secret),
            ),
            (
                "WEBHOOK_REPLAY_WINDOW_SECONDS".into(),
                self.webhook_replay_window_secs.to_string(),
            ),
            (
                "WEBHOOK_INGEST_BATCH".into(),
                self.webhook_ingest_batch.to_string(),
            ),
            (
                "WEBHOOK_INGEST_WRITERS".into(),
                self.webhook_ingest_writers.to_string(),
            ),
            ("CREATE_BATCH".into(), self.create_batch.to_string()),
            ("CREATE_WRITERS".into(), self.create_writers.to_string()),
            ("SYNC_WORKERS".into(), self.jobs.workers.to_string()),
            ("SYNC_LEASE_SECONDS".into(), self.jobs.lease_secs.to_string()),
            ("SYNC_RETRY_BASE_MS".into(), self.jobs.retry_base_ms.to_string()),
            ("SYNC_MAX_ATTEMPTS".into(), self.jobs.max_attempts.to_string()),
            (
                "SCHEDULER_ENABLED".into(),
                self.jobs.scheduler_enabled.to_string(),
            ),
            ("S3_ENDPOINT".into(), opt(&self.s3.endpoint)),
            ("S3_REGION".into(), opt(&self.s3.region)),
            ("S3_BUCKET".into(), opt(&self.s3.bucket)),
            ("S3_ACCESS_KEY_ID".into(), opt(&self.s3.access_key_id)),
            ("S3_SECRET_ACCESS_KEY".into(), secret(&self.s3.secret_access_key)),
            (
                "MEDIA_STORAGE".into(),
                match self.media.storage {
                    MediaStorageKind::Local => "local".into(),
                    MediaStorageKind::S3 => "s3".into(),
                },
            ),
            ("MEDIA_DIR".into(), self.media.dir.display().to_string()),
            ("MEDIA_MAX_BYTES".into(), self.media.max_bytes.to_string()),
            (
                "MEDIA_IMAGE_SIZES".into(),
                self.media
                    .image_sizes
                    .iter()
                    .map(|s| format!("{}:{}x{}", s.name, s.width, s.height))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), opt(&self.otel_endpoint)),
            ("LOG_LEVEL".into(), self.log_level.clone()),
            (
                "LOG_FORMAT".into(),
                match self.log_format {
                    LogFormat::Json => "json".into(),
                    LogFormat::Text => "text".into(),
                },
            ),
            ("MAX_BODY_BYTES".into(), self.max_body_bytes.to_string()),
            ("PUBLIC_CACHE_TTL_MS".into(), self.public_cache_ttl_ms.to_string()),
            (
                "REQUEST_TIMEOUT_SECONDS".into(),
                self.request_timeout_secs.to_string(),
            ),
            ("CORS_ORIGINS".into(), self.cors_origins.join(",")),
            ("CITYOS_BASE_DOMAINS".into(), self.base_domains.join(",")),
            ("SEED_ADMIN_EMAIL".into(), self.seed_admin_email.clone()),
            ("SEED_ADMIN_PASSWORD".into(), "[redacted]".into()),
            (
                "API_KEY_USAGE_FLUSH_SECONDS".into(),
                self.api_key_usage_flush_secs.to_string(),
            ),
        ]
    }
}

/// Checks the shape of a PostgreSQL URL without echoing it (it may hold a password).
fn check_database_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("must start with postgres:// or postgresql://")?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if host_port.is_empty() && !rest.contains("host=") {
        return Err("has no host");
    }
    if let Some((_, port)) = host_port.rsplit_once(':') {
        if !port.ends_with(']') && port.parse::<u16>().is_err() {
            return Err("has an invalid port");
        }
    }
    url.parse::<sqlx::postgres::PgConnectOptions>()
        .map(|_| ())
        .map_err(|_| "is not a valid PostgreSQL connection URL")
}

/// `postgres://user:secret@host/db` → `postgres://user:[redacted]@host/db`.
pub fn redact_database_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Development secrets kept in `<data_dir>/secrets.env` (mode 0600), created on first use.
struct DevSecretStore {
    path: PathBuf,
    values: Vec<(String, String)>,
    dirty: bool,
}

impl DevSecretStore {
    fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join("secrets.env");
        let mut values = Vec::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    if let Some((k, v)) = line.split_once('=') {
                        values.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(DevSecretStore {
            path,
            values,
            dirty: false,
        })
    }

    fn get_or_create(&mut self, name: &str) -> (Secret, bool) {
        if let Some((_, v)) = self.values.iter().find(|(k, _)| k == name) {
            return (Secret::new(v.clone()), false);
        }
        let value = crate::util::random_hex(32);
        self.values.push((name.to_string(), value.clone()));
        self.dirty = true;
        (Secret::new(value), true)
    }

    fn save(&self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = String::from("# Generated development secrets. Set the variables to override.\n");
        for (k, v) in &self.values {
            text.push_str(&format!("{k}={v}\n"));
        }
        let tmp = self.path.with_extension("env.tmp");
        std::fs::write(&tmp, text)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::rename(tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn production_requires_long_secrets_and_names_each_variable() {
        let err = Config::from_vars(&vars(&[
            ("APP_ENV", "production"),
            ("PAYLOAD_SECRET", "short-but-secret-value"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("PAYLOAD_SECRET: must be at least 32 bytes"),
            "{text}"
        );
        assert!(!text.contains("short-but-secret-value"), "secret leaked: {text}");
        for name in ["CITYOS_SIGNATURE_SECRET", "CRON_SECRET", "API_KEY_HASH_SALT"] {
            assert!(
                text.contains(&format!("{name}: required in production")),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_port_and_database_url_are_reported_together() {
        let err = Config::from_vars(&vars(&[
            ("PORT", "70000"),
            ("DATABASE_URL", "mysql://root:hunter2@localhost/db"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("PORT:"), "{text}");
        assert!(
            text.contains("DATABASE_URL: must start with postgres://"),
            "{text}"
        );
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn node_env_and_public_app_url_aliases_are_honoured() {
        let dir = std::env::temp_dir().join(format!("cityos-cfg-{}", uuid::Uuid::new_v4()));
        let secret = "x".repeat(40);
        let cfg = Config::from_vars(&vars(&[
            ("NODE_ENV", "production"),
            ("NEXT_PUBLIC_APP_URL", "https://cms.example.sa/"),
            ("PAYLOAD_SECRET", &secret),
            ("CITYOS_SIGNATURE_SECRET", &secret),
            ("CRON_SECRET", &secret),
            ("API_KEY_HASH_SALT", &secret),
            ("CITYOS_DATA_DIR", dir.to_str().unwrap()),
        ]))
        .unwrap();
        assert!(cfg.env.is_production());
        assert_eq!(cfg.app_url, "https://cms.example.sa");
        assert!(cfg.generated_secrets.is_empty());
        assert_eq!(format!("{:?}", cfg.secrets.payload_secret), "[redacted]");
        assert!(!format!("{cfg:?}").contains(&secret));
    }

    #[test]
    fn development_secrets_are_generated_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("cityos-cfg-{}", uuid::Uuid::new_v4()));
        let map = vars(&[("CITYOS_DATA_DIR", dir.to_str().unwrap())]);
        let first = Config::from_vars(&map).unwrap();
        assert_eq!(first.generated_secrets.len(), 4);
        let second = Config::from_vars(&map).unwrap();
        assert!(second.generated_secrets.is_empty());
        assert_eq!(
            first.secrets.payload_secret.expose(),
            second.secrets.payload_secret.expose()
        );
        assert_eq!(first.secrets.payload_secret.expose().len(), 64);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn database_url_is_redacted_for_display() {
        assert_eq!(
            redact_database_url("postgres://app:s3cret@db.internal:5432/cityos"),
            "postgres://app:[redacted]@db.internal:5432/cityos"
        );
    }
}
