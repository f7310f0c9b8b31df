//! The real Cerbos PDP (`../shared/recipes/cerbos.sh` installs the binary) serving the repo's
//! `policies/`. Test processes share one PDP under `target/tmp/cerbos` (started once under a
//! file lock, found again through its pid file, stopped by `./run test`), and tests that stop
//! a PDP on purpose start a private one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn recipes() -> PathBuf {
    std::env::var("CITYOS_RECIPES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("../shared/recipes"))
}

pub fn policies() -> PathBuf {
    repo().join("policies")
}

fn state_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cerbos")
}

fn lock(dir: &Path) -> std::fs::File {
    use std::os::unix::io::AsRawFd;
    std::fs::create_dir_all(dir).unwrap();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .unwrap();
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    f
}

/// The PDP binary (installed once by the recipe into `target/tmp/cerbos/tools`).
pub fn binary() -> PathBuf {
    let dir = state_dir();
    let _guard = lock(&dir);
    let out = Command::new("bash")
        .arg(recipes().join("cerbos.sh"))
        .arg("path")
        .env("TOOLS_DIR", dir.join("tools"))
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs the cerbos recipe");
    assert!(out.status.success(), "installing the Cerbos PDP failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `GET /_cerbos/health` answered 200.
pub fn healthy(http_addr: &str) -> bool {
    let Ok(mut s) =
        std::net::TcpStream::connect_timeout(&http_addr.parse().unwrap(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let req = format!("GET /_cerbos/health HTTP/1.0\r\nHost: {http_addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
}

/// Starts a PDP from `bin` (resolved by the caller: `binary()` takes the lock itself).
fn spawn(bin: &Path, http_addr: &str, detached: bool) -> Child {
    let mut cmd = Command::new(bin);
    cmd.arg("server")
        .arg(format!(
            "--config={}",
            recipes().join("cerbos/config.yaml").display()
        ))
        .arg(format!("--set=storage.disk.directory={}", policies().display()))
        .arg(format!("--set=server.httpListenAddr={http_addr}"))
        .arg(format!("--set=server.grpcListenAddr=127.0.0.1:{}", free_port()))
        .arg("--log-level=error")
        .env("CERBOS_NO_TELEMETRY", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if detached {
        // Not the test's stderr: the PDP outlives the test process.
        let log = std::fs::File::create(state_dir().join("cerbos.log")).expect("PDP log file");
        cmd.stderr(log);
        use std::os::unix::process::CommandExt;
        // Its own session: it outlives this test process, for the next ones.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let child = cmd.spawn().expect("start the Cerbos PDP");
    let start = Instant::now();
    while !healthy(http_addr) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "Cerbos PDP not ready on {http_addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A digest of every policy file: a PDP started from other policies is not reused.
fn policies_digest() -> String {
    use sha2::{Digest, Sha256};
    let mut files: Vec<PathBuf> = walk(&policies());
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap_or_default());
    }
    hex::encode(h.finalize())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The shared PDP's base URL, starting it when no live one serving these policies is recorded.
pub fn shared_url() -> String {
    let bin = binary();
    let dir = state_dir();
    let _guard = lock(&dir);
    let marker = dir.join("ADDR");
    let digest = policies_digest();
    if let Ok(addr) = std::fs::read_to_string(&marker) {
        let same = std::fs::read_to_string(dir.join("POLICIES")).is_ok_and(|d| d == digest);
        if same && healthy(addr.trim()) {
            return format!("http://{}", addr.trim());
        }
        // Outdated policies: stop that PDP (it may still serve other test processes' last
        // requests; those servers fall back to the built-in evaluator, which is tested too).
        if let Ok(pid) = std::fs::read_to_string(dir.join("PID")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }
    let addr = format!("127.0.0.1:{}", free_port());
    // Deliberately not waited for: it serves the next test processes; `./run test` stops it.
    #[allow(clippy::zombie_processes)]
    let child = spawn(&bin, &addr, true);
    std::fs::write(dir.join("PID"), child.id().to_string()).unwrap();
    std::fs::write(dir.join("POLICIES"), &digest).unwrap();
    std::fs::write(&marker, &addr).unwrap();
    format!("http://{addr}")
}

/// A PDP of one test's own, which the test may stop and start again on the same port.
pub struct PrivatePdp {
    child: Option<Child>,
    bin: PathBuf,
    pub addr: String,
}

impl PrivatePdp {
    pub fn start() -> PrivatePdp {
        let bin = binary();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = spawn(&bin, &addr, false);
        PrivatePdp {
            child: Some(child),
            bin,
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(spawn(&self.bin, &self.addr, false));
    }
}

impl Drop for PrivatePdp {
    fn drop(&mut self) {
        self.stop();
    }
}
