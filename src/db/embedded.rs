//! A private PostgreSQL cluster under the data directory: the zero-setup default of
//! `cityos serve` and the test harness's database server.
//!
//! `initdb` and `postgres` refuse to run as root, and CI runs as root: then every cluster
//! command runs as the `postgres` system user through `runuser`, and the cluster directory is
//! handed to that user. The cluster trusts local connections, which is safe only because it
//! listens on 127.0.0.1 and no Unix socket.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::process::Command;

/// The superuser the embedded cluster is created with.
pub const SUPERUSER: &str = "cityos";
/// The database the server uses inside the embedded cluster.
pub const DATABASE: &str = "cityos";

/// How a cluster is tuned when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on: for data someone wants to keep.
    Durable,
    /// fsync off: for throwaway test databases only.
    Throwaway,
}

/// A running embedded cluster.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    pgdata: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    run_as_postgres: bool,
    /// Whether this process started the cluster (and so stops it on shutdown).
    started_here: bool,
    /// Time spent in initdb/start, for the start-up log line.
    pub elapsed: Duration,
}

impl EmbeddedPostgres {
    /// Starts (creating on first use) the cluster in `<root>/postgres`, or attaches to the
    /// one already running there.
    pub async fn start(
        root: &Path,
        bin_dir: Option<&Path>,
        durability: Durability,
    ) -> anyhow::Result<EmbeddedPostgres> {
        let started = Instant::now();
        let bin_dir = match bin_dir {
            Some(dir) => dir.to_path_buf(),
            None => find_bin_dir()?,
        };
        let run_as_postgres = unsafe { libc::geteuid() } == 0;
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create data directory {}", root.display()))?;
        let root = std::fs::canonicalize(root)?;
        let mut pgdata = root.join("postgres");
        if run_as_postgres && !postgres_can_enter(&root).await {
            // e.g. a checkout under /root (mode 0700): the postgres user cannot reach it.
            let fallback = std::env::temp_dir().join(format!(
                "cityos-pg-{}",
                &crate::util::sha256_hex(root.to_string_lossy().as_bytes())[..12]
            ));
            tracing::warn!(
                data_dir = %root.display(),
                cluster = %fallback.display(),
                "the postgres user cannot enter the data directory; keeping the cluster elsewhere"
            );
            std::fs::create_dir_all(&fallback)?;
            pgdata = fallback.join("postgres");
        }

        let mut pg = EmbeddedPostgres {
            pgdata,
            bin_dir,
            port: 0,
            run_as_postgres,
            started_here: false,
            elapsed: Duration::ZERO,
        };

        if !pg.pgdata.join("PG_VERSION").exists() {
            pg.init().await?;
        }
        if let Some(port) = pg.running_port().await {
            pg.port = port;
        } else {
            pg.port = free_port()?;
            pg.launch(durability).await?;
            pg.started_here = true;
        }
        pg.elapsed = started.elapsed();
        Ok(pg)
    }

    /// Connection URL for a database of this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// The cluster's data directory (it may live outside the data dir when running as root).
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// Stops the cluster whoever started it (the test harness's "database lost" scenario).
    pub async fn force_stop(&self) -> anyhow::Result<()> {
        let pgdata = self.pgdata.to_string_lossy().to_string();
        self.run_tool("pg_ctl", &["-D", &pgdata, "-m", "immediate", "-w", "stop"])
            .await
            .map(|_| ())
    }

    /// Starts the cluster again on the same port after [`force_stop`](Self::force_stop).
    pub async fn restart(&self, durability: Durability) -> anyhow::Result<()> {
        self.launch(durability).await
    }

    /// Stops the cluster if this process started it (fast mode: open sessions are closed).
    pub async fn stop(&self) -> anyhow::Result<()> {
        if !self.started_here {
            return Ok(());
        }
        let pgdata = self.pgdata.to_string_lossy().to_string();
        self.run_tool("pg_ctl", &["-D", &pgdata, "-m", "fast", "-w", "stop"])
            .await
            .map(|_| ())
    }

    async fn init(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.pgdata)?;
        self.hand_over(&self.pgdata)?;
        let pgdata = self.pgdata.to_string_lossy().to_string();
        tracing::info!(path = %self.pgdata.display(), "creating embedded PostgreSQL cluster");
        self.run_tool(
            "initdb",
            &[
                "-D",
                &pgdata,
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        )
        .await
        .context("initdb failed")?;
        Ok(())
    }

    async fn launch(&self, durability: Durability) -> anyhow::Result<()> {
        let pgdata = self.pgdata.to_string_lossy().to_string();
        let log = self.pgdata.parent().unwrap_or(&self.pgdata).join("postgres.log");
        if self.run_as_postgres && !log.exists() {
            std::fs::write(&log, b"")?;
            self.hand_over(&log)?;
        }
        let mut opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200",
            self.port
        );
        if durability == Durability::Throwaway {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = log.to_string_lossy().to_string();
        self.run_tool(
            "pg_ctl",
            &["-D", &pgdata, "-l", &log, "-w", "-t", "60", "-o", &opts, "start"],
        )
        .await
        .with_context(|| format!("pg_ctl start failed (see {log})"))?;
        Ok(())
    }

    /// The port of a cluster already running on this data directory, if any.
    async fn running_port(&self) -> Option<u16> {
        let pid_file = std::fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        let mut lines = pid_file.lines();
        let pid: i32 = lines.next()?.trim().parse().ok()?;
        let port: u16 = lines.nth(2)?.trim().parse().ok()?;
        // A stale pid file from a killed run: pg_ctl start handles it, we only need to not attach.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            return None;
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .ok()
            .map(|_| port)
    }

    fn hand_over(&self, path: &Path) -> anyhow::Result<()> {
        if !self.run_as_postgres {
            return Ok(());
        }
        let (uid, gid) = postgres_ids()?;
        let c = std::ffi::CString::new(path.as_os_str().to_string_lossy().as_bytes())?;
        if unsafe { libc::chown(c.as_ptr(), uid, gid) } != 0 {
            bail!("cannot chown {} to postgres", path.display());
        }
        Ok(())
    }

    async fn run_tool(&self, tool: &str, args: &[&str]) -> anyhow::Result<String> {
        let exe = self.bin_dir.join(tool);
        let mut cmd = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .env_remove("PGDATA")
            .env("LC_ALL", "C.UTF-8")
            .stdin(std::process::Stdio::null())
            .current_dir("/");
        let out = cmd
            .output()
            .await
            .with_context(|| format!("cannot run {}", exe.display()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            bail!("{tool} exited with {}: {}", out.status, stderr.trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }
}

/// Whether the `postgres` system user can enter (traverse) `dir`.
async fn postgres_can_enter(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Finds the newest installed PostgreSQL server binaries (Debian layout).
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let major: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((major, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates.pop().map(|(_, p)| p).ok_or_else(|| {
        anyhow!(
            "no PostgreSQL server binaries found under /usr/lib/postgresql/*/bin \
             (install postgresql-15, set CITYOS_PG_BIN_DIR, or set DATABASE_URL)"
        )
    })
}

fn postgres_ids() -> anyhow::Result<(libc::uid_t, libc::gid_t)> {
    let name = std::ffi::CString::new("postgres")?;
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!("running as root needs the 'postgres' system user to own the embedded cluster");
    }
    let pw = unsafe { &*pw };
    Ok((pw.pw_uid, pw.pw_gid))
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
