//! The integration plane: signed webhooks in, the job queue in `sync_jobs`, the Medusa client,
//! cron routes and the built-in scheduler, signed events out.
//!
//! - `signatures`: one verifier per inbound scheme (constant time);
//! - `webhooks`: the three receivers (raw body → verify → log row + job → 2xx);
//! - `ingest`: the receivers' group commit (accepted deliveries waiting together share a statement);
//! - `handlers`: what each job type and each (source, event type) does;
//! - `queue`: claim / lease / heartbeat / backoff / dead, workers, batches;
//! - `medusa`: the Medusa v2 Admin API client;
//! - `routes`: push-to-medusa, reconcile, and the cron routes;
//! - `scheduler`: the cron work on intervals, one instance at a time (advisory locks);
//! - `outbound`: events to subscribed endpoints, signed as Standard Webhooks.

pub mod control;
pub mod handlers;
pub mod ingest;
pub mod medusa;
pub mod outbound;
pub mod queue;
pub mod routes;
pub mod scheduler;
pub mod secrets;
pub mod signatures;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::PgPool;
use tokio::sync::Notify;

use crate::config::Config;
use crate::crypto::FieldCipher;

impl Integrations {
    /// Subscribes to the instance's LISTEN connection (before it starts): the secret caches,
    /// and, when this instance runs workers, `cityos_jobs` to wake them.
    pub fn listen(&self, listeners: &crate::notify::Listeners) {
        self.secrets.listen(listeners);
        if self.config.jobs.workers > 0 {
            let wake = self.wake.clone();
            listeners.subscribe(
                "cityos_jobs",
                Arc::new(AtomicBool::new(false)),
                Arc::new(move || wake.notify_waiters()),
            );
        }
    }

    /// LISTEN cityos_jobs on a connection of its own, for an `Integrations` outside the app
    /// (tools, tests): every NOTIFY (a job was enqueued) wakes the idle workers.
    pub fn start_listener(self: &Arc<Self>) {
        let wake = self.wake.clone();
        crate::notify::spawn_listener(
            self.pool.clone(),
            "cityos_jobs",
            Arc::new(AtomicBool::new(false)),
            Arc::new(move || wake.notify_waiters()),
        );
    }
}

/// What the receivers, workers and cron routes share.
pub struct Integrations {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub cipher: Arc<FieldCipher>,
    /// Outbound HTTP (Medusa, endpoints): connect 2 s, idle sockets dropped before Node's 5 s.
    pub http: reqwest::Client,
    /// Woken by `NOTIFY cityos_jobs` (a job was enqueued).
    pub wake: Arc<Notify>,
    /// `{hostname}:{pid}`, the prefix of `lockedBy`.
    pub instance: String,
    /// Inbound webhook secrets per source, cached (NOTIFY cityos_integrations).
    pub secrets: secrets::SecretDirectory,
    /// The accepted deliveries' writers (group commit).
    pub ingest: ingest::Ingest,
    /// Set by [`job_enqueued`](Self::job_enqueued); the notifier sends one NOTIFY for all.
    notify_pending: Arc<AtomicBool>,
    notifier: Arc<Notify>,
    /// The coalescing notifier runs (started by `start`); without it inserts notify themselves.
    notifier_running: AtomicBool,
    /// Set by [`drain`](Self::drain): workers claim nothing more and release what they have not
    /// started.
    stopping: AtomicBool,
    /// The background workers `start` spawned, for `drain` to wait on.
    workers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Enqueues within this interval share one `NOTIFY cityos_jobs` for other instances.
const NOTIFY_COALESCE: Duration = Duration::from_millis(20);

impl Integrations {
    pub fn new(pool: PgPool, config: Arc<Config>, cipher: Arc<FieldCipher>) -> Arc<Integrations> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_millis(config.jobs.http_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .expect("an HTTP client with timeouts only");
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "cityos".into());
        Arc::new(Integrations {
            secrets: secrets::SecretDirectory::new(&config),
            ingest: ingest::Ingest::new(
                pool.clone(),
                config.webhook_ingest_batch,
                config.webhook_ingest_writers,
                config.jobs.max_attempts,
            ),
            notify_pending: Arc::new(AtomicBool::new(false)),
            notifier: Arc::new(Notify::new()),
            notifier_running: AtomicBool::new(false),
            pool,
            config,
            cipher,
            http,
            wake: Arc::new(Notify::new()),
            instance: format!("{host}:{}", std::process::id()),
            stopping: AtomicBool::new(false),
            workers: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Starts the coalescing NOTIFY sender, the workers (`SYNC_WORKERS`) and, when enabled, the
    /// scheduler. Their wake-ups and the secret caches listen on the app's one LISTEN
    /// connection ([`listen`](Self::listen)).
    pub fn start(self: &Arc<Self>) {
        self.spawn_notifier();
        let handles = queue::spawn_workers(self, self.config.jobs.workers);
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(handles);
        if self.config.jobs.scheduler_enabled {
            scheduler::spawn(self.clone());
        }
    }
}

impl Integrations {
    /// Whether [`drain`](Self::drain) was called: no new claims.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stops the workers at shutdown: they claim nothing more, finish and record the jobs
    /// they are running (within `within`), and hand the jobs they claimed but had not started
    /// back to the queue at once, for another instance, instead of leaving them to their
    /// leases. What is still running at the deadline is left to its lease (the reaper of any
    /// instance returns it; the target dedupes a repeated call by the idempotency key).
    pub async fn drain(&self, within: Duration) {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_waiters();
        let handles: Vec<_> = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        if handles.is_empty() {
            return;
        }
        let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
        match tokio::time::timeout(within, futures_util::future::join_all(handles)).await {
            Ok(_) => tracing::info!("job workers drained"),
            Err(_) => {
                tracing::warn!(
                    within_ms = within.as_millis() as u64,
                    "job workers still busy at the drain deadline; their jobs return after the lease"
                );
                for a in aborts {
                    a.abort();
                }
            }
        }
    }

    /// Whether an insert may leave its `NOTIFY cityos_jobs` to [`job_enqueued`](Self::job_enqueued)
    /// (the statement then sets `cityos.jobs_notify_deferred`, migration 0016).
    pub fn defers_notify(&self) -> bool {
        self.notifier_running.load(Ordering::Acquire)
    }

    /// A job was committed by a statement that deferred its NOTIFY: wake this instance's idle
    /// workers now, and let the notifier tell the other instances (one NOTIFY per interval,
    /// however many jobs arrived in it).
    pub fn job_enqueued(&self) {
        self.wake.notify_waiters();
        if !self.notify_pending.swap(true, Ordering::AcqRel) {
            self.notifier.notify_one();
        }
    }

    /// The task behind [`job_enqueued`](Self::job_enqueued). A NOTIFY that fails is not retried:
    /// idle workers elsewhere still poll every `SYNC_POLL_INTERVAL_MS`.
    fn spawn_notifier(self: &Arc<Self>) {
        self.notifier_running.store(true, Ordering::Release);
        let (pool, pending, notifier) = (
            self.pool.clone(),
            self.notify_pending.clone(),
            self.notifier.clone(),
        );
        tokio::spawn(async move {
            loop {
                notifier.notified().await;
                if pool.is_closed() {
                    return;
                }
                pending.store(false, Ordering::Release);
                if let Err(e) = sqlx::query("SELECT pg_notify('cityos_jobs', 'sync_jobs')")
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "coalesced job NOTIFY failed");
                }
                tokio::time::sleep(NOTIFY_COALESCE).await;
            }
        });
    }
}
