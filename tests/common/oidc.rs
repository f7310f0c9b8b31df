//! The Keycloak-shaped token issuer of `../shared/recipes/oidc-stand-in`, run as a real HTTP
//! server (Node) for the identity tests. Its files are copied to `target/tmp/oidc-stand-in` and
//! installed there once (`npm ci`), because the shared recipe folder is read-only.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct OidcStandIn {
    child: Child,
    pub base: String,
    client: reqwest::Client,
}

fn source_dir() -> PathBuf {
    std::env::var("OIDC_STAND_IN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/recipes/oidc-stand-in"))
}

/// Copies and installs the stand-in once (under a lock: test processes run in parallel).
fn prepare() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oidc-stand-in");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .unwrap();
    use std::os::unix::io::AsRawFd;
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if !dir.join("node_modules/jose/package.json").exists() {
        let src = source_dir();
        for f in ["server.mjs", "package.json", "package-lock.json"] {
            std::fs::copy(src.join(f), dir.join(f))
                .unwrap_or_else(|e| panic!("copy {f} from {}: {e}", src.display()));
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .expect("npm (Node.js) is needed for the identity tests");
        assert!(status.success(), "npm ci for the OIDC stand-in failed");
    }
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_UN) };
    dir
}

impl OidcStandIn {
    pub async fn start() -> OidcStandIn {
        OidcStandIn::start_with(0, None).await
    }

    /// Listens on `port` but names `base_url` as its address (issuer, discovery): for a
    /// test-side front that adds endpoints (tests/admin_keycloak.rs adds the authorization
    /// endpoint and the code grant) and forwards the rest here.
    pub async fn start_behind(port: u16, base_url: &str) -> OidcStandIn {
        OidcStandIn::start_with(port, Some(base_url)).await
    }

    async fn start_with(port: u16, base_url: Option<&str>) -> OidcStandIn {
        let dir = tokio::task::spawn_blocking(prepare).await.unwrap();
        let mut command = Command::new("node");
        if let Some(b) = base_url {
            command.env("BASE_URL", b);
        }
        let mut child = command
            .arg("server.mjs")
            .env("PORT", port.to_string())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        // "oidc-stand-in listening http://127.0.0.1:PORT pid N"
        let base = line
            .split_whitespace()
            .nth(2)
            .expect("listening line")
            .to_string();
        let stand_in = OidcStandIn {
            child,
            base,
            client: reqwest::Client::new(),
        };
        for _ in 0..100 {
            if let Ok(r) = stand_in
                .client
                .get(format!("{}/health/ready", stand_in.base))
                .send()
                .await
            {
                if r.status() == 200 {
                    return stand_in;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("OIDC stand-in not ready");
    }

    pub fn issuer(&self) -> String {
        format!("{}/realms/cms", self.base)
    }

    /// The orchestrator's environment for this issuer.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KEYCLOAK_ISSUER_URL".into(), self.issuer()),
            ("KEYCLOAK_CLIENT_ID".into(), "cms-orchestrator".into()),
            ("KEYCLOAK_AUDIENCE".into(), "cms-orchestrator".into()),
        ]
    }

    pub async fn mint(&self, body: Value) -> String {
        let res: Value = self
            .client
            .post(format!("{}/test/mint", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res["access_token"].as_str().expect("access_token").to_string()
    }

    pub async fn rotate(&self, drop_passive: bool) -> Value {
        let q = if drop_passive { "?drop_passive=1" } else { "" };
        self.client
            .post(format!("{}/test/rotate{q}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn jwks_fetches(&self) -> i64 {
        let v: Value = self
            .client
            .get(format!("{}/test/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["jwks_fetches"].as_i64().unwrap()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcStandIn {
    fn drop(&mut self) {
        self.stop();
    }
}
