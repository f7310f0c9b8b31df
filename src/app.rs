//! Builds the application: state, router, listener. `main` and the tests start the very same
//! thing through [`Application::build`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::routing::get;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;

use crate::auth::AuthKeys;
use crate::collections::Registry;
use crate::config::Config;
use crate::db::{self, Database};
use crate::http::{self, cors::CorsPolicy};

/// Everything a handler may need; cheap to clone (one reference count: every request clones
/// the state for each extractor, and a struct of many `Arc`s made that many contended atomic
/// updates). Handlers take only their part via `FromRef`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub auth: Arc<AuthKeys>,
    pub cors: Arc<CorsPolicy>,
    pub cipher: Arc<crate::crypto::FieldCipher>,
    pub tenants: Arc<crate::tenancy::cache::TenantDirectory>,
    pub key_usage: Arc<crate::auth::api_keys::UsageRecorder>,
    pub keycloak: Option<Arc<crate::auth::keycloak::KeycloakVerifier>>,
    pub role_map: Arc<crate::auth::keycloak::RoleMap>,
    pub principals: Arc<crate::notify::NotifiedCache<crate::auth::CachedAuth>>,
    pub hosts: Arc<crate::tenancy::resolve::HostDirectory>,
    /// Where uploaded files live (local disk or S3).
    pub media: Arc<crate::media::storage::Storage>,
    /// Webhooks, the job queue, Medusa, cron (src/integrations).
    pub integrations: Arc<crate::integrations::Integrations>,
    pub authz: Arc<crate::authz::Authorizer>,
    pub public_cache: Arc<crate::collections::public_cache::PublicCache>,
    /// REST creates waiting together share a transaction (`db::group_commit`).
    pub creates: crate::db::group_commit::GroupCommit<crate::collections::routes::CreateJob>,
}

impl FromRef<AppState> for PgPool {
    fn from_ref(s: &AppState) -> PgPool {
        s.pool.clone()
    }
}
impl FromRef<AppState> for Arc<Config> {
    fn from_ref(s: &AppState) -> Arc<Config> {
        s.config.clone()
    }
}
impl FromRef<AppState> for Arc<Registry> {
    fn from_ref(s: &AppState) -> Arc<Registry> {
        s.registry.clone()
    }
}
impl FromRef<AppState> for Arc<CorsPolicy> {
    fn from_ref(s: &AppState) -> Arc<CorsPolicy> {
        s.cors.clone()
    }
}

/// A bound, migrated, ready-to-serve application.
pub struct Application {
    listener: TcpListener,
    router: Router,
    db: Database,
    /// Drained after the HTTP server (its workers finish or hand back their jobs).
    integrations: Arc<crate::integrations::Integrations>,
}

impl Application {
    /// Opens the database (embedded or `DATABASE_URL`), migrates, seeds on first start, binds.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let db = Database::open(&config).await?;
        db::migrate(&db.pool).await?;
        if db.created && config.seed_on_first_start {
            let report = db::seed::demo(
                &db.pool,
                &config.seed_admin_email,
                config.seed_admin_password.expose(),
            )
            .await?;
            if let Some(email) = report.admin_created {
                tracing::warn!(
                    email = %email,
                    "demo data loaded; super admin created (password from SEED_ADMIN_PASSWORD, default cityos-admin)"
                );
            }
        }
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (PORT/HOST)"))?;
        let state = AppState::new(config, db.pool.clone());
        let listeners = crate::notify::Listeners::new();
        state.tenants.listen(&listeners);
        state.principals.listen(&listeners, "cityos_auth");
        state.public_cache.listen(&listeners);
        state.hosts.listen(&listeners);
        state.integrations.listen(&listeners);
        listeners.start(db.pool.clone());
        state.public_cache.start_announcer(db.pool.clone());
        if let Some(kc) = &state.keycloak {
            kc.spawn_refresh(Duration::from_secs(
                state.config.keycloak.jwks_refresh_secs.max(1),
            ));
        }
        // Staging files a crashed process left behind (an hour is far beyond any upload's time).
        let staging = state.config.media.dir.join(".incoming");
        tokio::spawn(async move {
            let removed = crate::media::upload::sweep_staging(&staging, Duration::from_secs(3600)).await;
            if removed > 0 {
                tracing::info!(removed, "stale upload staging files removed");
            }
        });
        state.integrations.start();
        state.key_usage.spawn_flush(
            db.pool.clone(),
            Duration::from_secs(state.config.api_key_usage_flush_secs.max(1)),
        );
        let integrations = state.integrations.clone();
        Ok(Application {
            listener,
            router: router(state),
            db,
            integrations,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves until `shutdown` resolves, drains in-flight requests, then closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "listening");
        // The method override rewrites the request before routing, so it wraps the router.
        let service = tower::Layer::layer(
            &axum::middleware::from_fn(http::method_override::middleware),
            self.router,
        );
        let served = axum::serve(
            self.listener,
            axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(service),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        tracing::info!("stopped accepting; in-flight requests drained");
        let within = Duration::from_secs(self.integrations.config.jobs.drain_secs);
        self.integrations.drain(within).await;
        self.db.close().await;
        served.context("server error")
    }
}

impl AppState {
    pub fn new(config: Config, pool: PgPool) -> AppState {
        let cors = Arc::new(CorsPolicy::from_list(&config.cors_origins));
        let auth = Arc::new(AuthKeys::new(&config));
        let cipher = Arc::new(crate::crypto::FieldCipher::new(
            config.secrets.payload_secret.expose(),
        ));
        let config = Arc::new(config);
        let integrations =
            crate::integrations::Integrations::new(pool.clone(), config.clone(), cipher.clone());
        // Policy files given by CERBOS_POLICY_DIR were loaded once in Config::from_vars.
        let authz = crate::authz::Authorizer::new(&config.cerbos).expect("policies load");
        AppState(Arc::new(Shared {
            integrations,
            authz: Arc::new(authz),
            creates: crate::db::group_commit::GroupCommit::new(
                pool.clone(),
                config.create_batch,
                config.create_writers,
            ),
            public_cache: Arc::new(crate::collections::public_cache::PublicCache::new(
                config.public_cache_ttl_ms,
                20_000,
            )),
            tenants: crate::tenancy::cache::TenantDirectory::new(),
            key_usage: crate::auth::api_keys::UsageRecorder::new(),
            principals: crate::notify::NotifiedCache::new(50_000),
            hosts: crate::tenancy::resolve::HostDirectory::new(),
            keycloak: crate::auth::keycloak::KeycloakVerifier::from_config(&config.keycloak),
            // Validated in Config::from_vars.
            role_map: Arc::new(
                crate::auth::keycloak::RoleMap::parse(config.keycloak.role_map.as_deref())
                    .unwrap_or_default(),
            ),
            cipher,
            media: Arc::new(crate::media::storage::Storage::from_config(
                &config.media,
                &config.s3,
            )),
            pool,
            registry: Arc::new(Registry::new()),
            auth,
            cors,
            config,
        }))
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/health", get(http::health::health))
        .route("/ready", get(http::health::ready))
        .merge(crate::auth::routes::router())
        .merge(crate::integrations::webhooks::router())
        .merge(crate::integrations::routes::router())
        .merge(crate::collections::routes::router())
        .merge(crate::media::routes::router())
        .fallback(api_not_found)
        // Payload answers an unsupported method with the same route-not-found 404.
        .method_not_allowed_fallback(api_not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.cors.clone(),
            http::cors::middleware,
        ));

    Router::new()
        .nest("/api", api)
        .merge(crate::web::router())
        .merge(crate::admin::router())
        .fallback(api_not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(state.config.request_timeout_secs),
        ))
        .layer(axum::middleware::from_fn(http::request_id::middleware))
        .with_state(state)
}

async fn api_not_found(req: Request) -> axum::response::Response {
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    http::error::route_not_found(&path)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
