//! The real Docker Engine in tests: a locally built busybox image (no
//! registry is reachable), containers that clean up after themselves, and a
//! socket proxy that can cut the agent off from the daemon.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SOCKET: &str = "/var/run/docker.sock";
pub const IMAGE: &str = "lookout-test-busybox:1";

/// Whether the daemon answers.
pub fn available() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `docker args...` and returns trimmed stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A static busybox, from Debian's busybox-static package.
fn static_busybox() -> Option<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let path = Path::new(p);
        if let Ok(bytes) = std::fs::read(path) {
            // A dynamic executable names its ELF interpreter near the start.
            let head = &bytes[..bytes.len().min(4096)];
            let dynamic = head
                .windows(8)
                .any(|w| w == b"/lib64/l" || w == b"/lib/ld-");
            if !dynamic {
                return Some(path.to_path_buf());
            }
        }
    }
    None
}

/// Builds the test image once per machine (`FROM scratch` plus a static
/// busybox); concurrent test processes wait on a lock file.
pub fn ensure_image() {
    let lock = std::fs::File::create(std::env::temp_dir().join("lookout-test-image.lock"))
        .expect("lock file");
    // SAFETY: flock on a file we own; released when `lock` is dropped.
    unsafe {
        libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX);
    }
    let exists = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if exists {
        return;
    }
    let busybox = static_busybox().expect(
        "a static busybox (Debian package busybox-static) is needed to build the test image",
    );
    let ctx = tempfile::tempdir().expect("build context");
    std::fs::copy(&busybox, ctx.path().join("busybox")).expect("copy busybox");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"sh\"]\n",
    )
    .expect("Dockerfile");
    let out = Command::new("docker")
        .args(["build", "-q", "-t", IMAGE])
        .arg(ctx.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "building {IMAGE} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A unique name for a test container.
pub fn unique_name(what: &str) -> String {
    format!(
        "lookout-test-{what}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A container removed (forcibly) when dropped.
pub struct Container {
    pub id: String,
    pub name: String,
}

impl Container {
    /// `docker run -d --name <unique> <options...> IMAGE <command...>`.
    pub fn run(what: &str, options: &[&str], command: &[&str]) -> Container {
        ensure_image();
        let name = unique_name(what);
        let mut args = vec!["run", "-d", "--name", &name];
        args.extend_from_slice(options);
        args.push(IMAGE);
        args.extend_from_slice(command);
        let id = docker(&args);
        Container { id, name }
    }

    pub fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.id])
    }

    pub fn cgroup_id(&self) -> String {
        format!("/docker/{}", self.id)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A unix-socket proxy in front of the Docker daemon. `cut()` drops every
/// connection and refuses new ones (the daemon "restarts" as far as the
/// client can tell); `restore()` lets clients in again.
pub struct SocketProxy {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    stop: Arc<AtomicBool>,
}

impl SocketProxy {
    pub fn start() -> SocketProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind proxy socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (o, c, s) = (open.clone(), conns.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if !o.load(Ordering::SeqCst) {
                            continue; // dropped: the client sees a reset
                        }
                        let _ = client.set_nonblocking(false);
                        let Ok(upstream) = UnixStream::connect(SOCKET) else {
                            continue;
                        };
                        if let (Ok(c1), Ok(u1)) = (client.try_clone(), upstream.try_clone()) {
                            c.lock().unwrap_or_else(|e| e.into_inner()).extend([c1, u1]);
                        }
                        pipe(client.try_clone().ok(), upstream.try_clone().ok());
                        pipe(upstream.try_clone().ok(), client.try_clone().ok());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SocketProxy {
            path,
            _dir: dir,
            open,
            conns,
            stop,
        }
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn pipe(from: Option<UnixStream>, to: Option<UnixStream>) {
    let (Some(mut from), Some(mut to)) = (from, to) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
