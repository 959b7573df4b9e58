//! Helpers for Lookout's end-to-end tests: real processes, the real Docker
//! Engine, real peer binaries.
//!
//! A test that needs something this machine lacks calls [`require`]: under
//! `CI=true` that fails the test loudly; elsewhere it skips with a note.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lookout_protocol::exposition::{ParsedSample, parse_text};

pub mod docker;
pub mod tls;

/// Whether the suite runs in CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Returns true when `available`; otherwise fails under CI, or prints a
/// skip note and returns false.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if in_ci() {
        panic!("{what} is required for this test and is missing (CI=true: not skipping)");
    }
    eprintln!("SKIPPED: {what} is not available on this machine");
    false
}

/// Whether a program is on the PATH.
pub fn have_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(name).is_file()))
        .unwrap_or(false)
}

/// The directory holding the workspace's binaries (target/<profile>).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOOKOUT_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is not built; run the suite with `cargo nextest run --workspace` (or set LOOKOUT_BIN_DIR)",
        p.display()
    );
    p
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP response read by [`http_get`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.0 GET, enough for scraping and health checks.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    read_response(s)
}

/// Reads a whole HTTP/1.0 response (the server closes the connection).
fn read_response(mut s: TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_string(),
    })
}

/// A scrape, parsed, with lookups by name and labels.
pub struct Scrape {
    pub text: String,
    pub samples: Vec<ParsedSample>,
}

impl Scrape {
    pub fn parse(text: String) -> Scrape {
        let samples =
            parse_text(&text).unwrap_or_else(|e| panic!("unparsable exposition: {e}\n{text}"));
        Scrape { text, samples }
    }

    /// Samples of `name` whose labels include every pair in `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> std::vec::IntoIter<&ParsedSample> {
        self.samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect::<Vec<_>>()
            .into_iter()
    }

    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.find(name, labels).next().map(|s| s.value)
    }
}

/// A running `lookout-agent` with its own config, port and log file;
/// killed when dropped.
pub struct Agent {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Agent {
    /// Starts the agent with `config_yaml` (its `listen` is set here) and
    /// waits until `/metrics` answers.
    pub fn start(config_yaml: &str) -> Agent {
        Self::start_with_env(config_yaml, &[])
    }

    pub fn start_with_env(config_yaml: &str, env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let config = format!("listen: \"{addr}\"\n{config_yaml}");
        std::fs::write(dir.path().join("agent.yaml"), config).expect("write config");
        let log = std::fs::File::create(dir.path().join("agent.log")).expect("log file");
        let mut cmd = Command::new(bin("lookout-agent"));
        cmd.arg("--config")
            .arg(dir.path().join("agent.yaml"))
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start lookout-agent");
        let mut agent = Agent { child, addr, dir };
        let up = wait_for(Duration::from_secs(15), || {
            http_get(agent.addr, "/-/healthy", &[])
                .ok()
                .filter(|r| r.status == 200)
        });
        if up.is_none() {
            let _ = agent.child.kill();
            panic!(
                "lookout-agent did not come up on {}; its log:\n{}",
                agent.addr,
                agent.log()
            );
        }
        agent
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.yaml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    pub fn scrape(&self) -> Scrape {
        let r = http_get(self.addr, "/metrics", &[])
            .unwrap_or_else(|e| panic!("scrape failed: {e}; log:\n{}", self.log()));
        assert_eq!(r.status, 200, "scrape answered {}", r.status);
        Scrape::parse(r.body)
    }

    /// Scrapes until `f` finds what it wants, or panics with the last scrape.
    pub fn wait_scrape<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&Scrape) -> Option<T>,
    ) -> T {
        let mut last = None;
        let found = wait_for(timeout, || {
            let s = self.scrape();
            let v = f(&s);
            last = Some(s);
            v
        });
        match found {
            Some(v) => v,
            None => panic!(
                "timed out after {timeout:?} waiting for {what}; last scrape:\n{}\nagent log:\n{}",
                last.map(|s| s.text).unwrap_or_default(),
                self.log()
            ),
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny HTTP server answering every request with one status and body;
/// stands in for kubelet's and kube-proxy's health ports. The answer can be
/// changed while it runs.
pub struct StubServer {
    pub addr: SocketAddr,
    answer: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl StubServer {
    pub fn start(status: u16, body: &str) -> StubServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub");
        let addr = listener.local_addr().expect("stub addr");
        let answer = std::sync::Arc::new(std::sync::Mutex::new((status, body.to_string())));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, h) = (answer.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = stream.read(&mut buf);
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, body) = a.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(resp.as_bytes());
            }
        });
        StubServer { addr, answer, hits }
    }

    pub fn set(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = (status, body.to_string());
    }
}

/// A minimal HTTP/1.0 POST.
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    read_response(s)
}

/// One request a [`CaptureServer`] received.
#[derive(Clone, Debug)]
pub struct Captured {
    /// The status the server answered with.
    pub status: u16,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the whole request had arrived.
    pub at: Instant,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 server (keep-alive, Content-Length bodies) that records every
/// request and answers 204: a stand-in receiver for what peers send.
pub struct CaptureServer {
    pub addr: SocketAddr,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<Captured>>>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

impl CaptureServer {
    pub fn start() -> CaptureServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind capture server");
        let addr = listener.local_addr().expect("addr");
        let received: std::sync::Arc<std::sync::Mutex<Vec<Captured>>> = Default::default();
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(204));
        let store = received.clone();
        let answer = status.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = store.clone();
                let answer = answer.clone();
                std::thread::spawn(move || serve_connection(stream, &store, &answer));
            }
        });
        CaptureServer {
            addr,
            received,
            status,
        }
    }

    /// Answers every following request with `status` (204 at start).
    pub fn set_status(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn serve_connection(
    mut stream: TcpStream,
    store: &std::sync::Mutex<Vec<Captured>>,
    answer: &std::sync::atomic::AtomicU16,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..head_end]).to_string();
        pending.drain(..head_end + 4);
        let mut lines = head.lines();
        let mut first = lines.next().unwrap_or("").split_whitespace();
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while pending.len() < len {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = pending.drain(..len).collect();
        let status = answer.load(std::sync::atomic::Ordering::SeqCst);
        store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Captured {
                status,
                method,
                path,
                headers,
                body,
                at: Instant::now(),
            });
        let reply = if status == 204 {
            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".to_string()
        } else {
            format!("HTTP/1.1 {status} Status\r\nContent-Length: 6\r\n\r\nstatus")
        };
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A Debian `prometheus` server on a free port with its own data dir;
/// killed when dropped.
pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config_yaml` and extra flags, and waits until
    /// it is ready.
    pub fn start(config_yaml: &str, flags: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        std::fs::write(dir.path().join("prometheus.yml"), config_yaml).expect("config");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let p = Prometheus { addr, child, dir };
        if wait_for(Duration::from_secs(30), || {
            http_get(p.addr, "/-/ready", &[])
                .ok()
                .filter(|r| r.status == 200)
        })
        .is_none()
        {
            panic!("prometheus did not become ready; its log:\n{}", p.log());
        }
        p
    }

    /// A Prometheus that accepts remote write, or `None` (after
    /// [`require`]) when Prometheus is not installed.
    pub fn receiver() -> Option<Prometheus> {
        require(
            "prometheus (Debian package prometheus)",
            have_program("prometheus"),
        )
        .then(|| {
            Prometheus::start(
                "global: {scrape_interval: 15s}\n",
                &["--web.enable-remote-write-receiver"],
            )
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The server's process id (for its memory in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first result of an instant query, as JSON.
    pub fn query(&self, expr: &str) -> Option<serde_json::Value> {
        let q = url_encode(expr);
        let r = http_get(self.addr, &format!("/api/v1/query?query={q}"), &[]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        v["data"]["result"]
            .as_array()
            .and_then(|a| a.first().cloned())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter value.
pub fn url_encode(s: &str) -> String {
    let mut q = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    q
}

/// One series from the collector's `/api/v1/export`.
#[derive(Clone, Debug)]
pub struct Exported {
    pub labels: std::collections::BTreeMap<String, String>,
    pub timestamps: Vec<i64>,
    /// Numbers, or the strings "NaN", "StaleNaN", "+Inf", "-Inf".
    pub values: Vec<serde_json::Value>,
}

/// A `lookout serve` process with its own storage directory. Killed when
/// dropped; [`Collector::restart`] starts it again on the same port and data.
pub struct Collector {
    pub addr: SocketAddr,
    pub child: Child,
    pub dir: tempfile::TempDir,
    starts: u32,
}

impl Collector {
    /// Starts a collector with `config_yaml` (its `listen` and
    /// `storage.path` are set here) and waits until it is ready.
    pub fn start(config_yaml: &str) -> Collector {
        Self::start_with_files(config_yaml, &[])
    }

    /// Starts a collector with `config_yaml` after writing `files` (name,
    /// text) beside its config, where relative `rules.files` paths point.
    pub fn start_with_files(config_yaml: &str, files: &[(&str, &str)]) -> Collector {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        std::fs::write(dir.path().join("lookout.yaml"), config_yaml).expect("write config");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text)
                .unwrap_or_else(|e| panic!("write {name}: {e}"));
        }
        let child = Self::spawn(&dir, addr, 0);
        let mut c = Collector {
            addr,
            child,
            dir,
            starts: 1,
        };
        c.wait_ready();
        c
    }

    fn spawn(dir: &tempfile::TempDir, addr: SocketAddr, n: u32) -> Child {
        let log = std::fs::File::create(dir.path().join(format!("lookout.{n}.log"))).expect("log");
        Command::new(bin("lookout"))
            .arg("serve")
            .arg("--config")
            .arg(dir.path().join("lookout.yaml"))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--storage-path")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lookout serve")
    }

    fn wait_ready(&mut self) {
        let up = wait_for(Duration::from_secs(30), || {
            http_get(self.addr, "/-/ready", &[])
                .ok()
                .filter(|r| r.status == 200)
        });
        if up.is_none() {
            let _ = self.child.kill();
            panic!(
                "lookout serve did not come up on {}; log:\n{}",
                self.addr,
                self.log()
            );
        }
    }

    /// Every log the process wrote, oldest start first.
    pub fn log(&self) -> String {
        (0..self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.path().join(format!("lookout.{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        // SAFETY: kill has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = wait_for(Duration::from_secs(15), || {
            self.child.try_wait().ok().flatten()
        });
        assert!(
            status.is_some_and(|s| s.success()),
            "lookout serve did not stop cleanly: {status:?}; log:\n{}",
            self.log()
        );
    }

    /// Starts again on the same address and storage.
    pub fn restart(&mut self) {
        self.child = Self::spawn(&self.dir, self.addr, self.starts);
        self.starts += 1;
        self.wait_ready();
    }

    pub fn get(&self, path: &str) -> Response {
        http_get(self.addr, path, &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `http://<addr>`, for `--url` flags and peers' configs.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A file beside the collector's config (rule files live there).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The collector's storage directory (state files live there).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Sends a signal to the running process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// The result of one instant query now, as JSON (`data.result`).
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(expr)));
        assert_eq!(data["resultType"], "vector", "{expr}: {data}");
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Pushes `(labels, value)` gauges sampled now; panics unless accepted.
    pub fn push_now(&self, series: &[(&[(&str, &str)], f64)]) {
        self.push_at(now_ms(), series)
    }

    /// Pushes `(labels, value)` gauges sampled at `t` (ms); panics unless
    /// accepted.
    pub fn push_at(&self, t: i64, series: &[(&[(&str, &str)], f64)]) {
        let body = rw_body(
            series
                .iter()
                .map(|(labels, v)| rw_series(labels, &[(t, *v)]))
                .collect(),
        );
        let (status, text) = self.push(&[], &body);
        assert_eq!(status, 204, "push refused: {text}");
    }

    /// `data` of a successful API answer.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    }

    /// Raw samples of the series a selector matches.
    pub fn export(&self, selector: &str) -> Vec<Exported> {
        let r = self.get(&format!("/api/v1/export?match[]={}", url_encode(selector)));
        assert_eq!(r.status, 200, "export {selector}: {}", r.body);
        r.body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("export line");
                Exported {
                    labels: v["metric"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_string())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    timestamps: v["timestamps"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|t| t.as_i64()).collect())
                        .unwrap_or_default(),
                    values: v["values"].as_array().cloned().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Scrapes the collector's own /metrics.
    pub fn scrape(&self) -> Scrape {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200);
        Scrape::parse(r.body)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process, in seconds (0 when it is gone).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // state is not numeric, so utime/stime are at 10 and 11 of the numbers.
    let ticks = lookout_agent::procfs::clock_ticks_per_second();
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / ticks
}

/// A `/proc/<pid>/status` field in kB (`VmRSS:`, `VmHWM:`), 0 when absent.
pub fn process_status_kib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

/// One remote-write series from label pairs and (ms, value) samples.
pub fn rw_series(
    labels: &[(&str, &str)],
    samples: &[(i64, f64)],
) -> lookout_protocol::remote_write::TimeSeries {
    use lookout_protocol::remote_write::{Label, Sample, TimeSeries};
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
        ..Default::default()
    }
}

/// A remote-write 1.0 body: snappy-compressed protobuf.
pub fn rw_body(series: Vec<lookout_protocol::remote_write::TimeSeries>) -> Vec<u8> {
    lookout_protocol::remote_write::encode(&lookout_protocol::remote_write::WriteRequest {
        timeseries: series,
        metadata: Vec::new(),
    })
}

/// The headers every remote-write push carries.
pub const RW_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

impl Collector {
    /// Pushes a remote-write body with extra headers; (status, body), or
    /// status 0 when the request failed.
    pub fn push(&self, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let mut h: Vec<(&str, &str)> = RW_HEADERS.to_vec();
        h.extend_from_slice(headers);
        match http_post(self.addr, "/api/v1/write", &h, body) {
            Ok(r) => (r.status, r.body),
            Err(e) => (0, e.to_string()),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses an RFC 3339 time in UTC (`2025-01-06T02:00:00Z`, with or without
/// a fraction) to milliseconds since the epoch; `None` for anything else.
pub fn rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let millis = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        digits.parse::<i64>().ok()?
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + millis)
}

/// Runs the `lookout` binary with `args` to completion.
pub fn lookout_cli(args: &[&str]) -> std::process::Output {
    Command::new(bin("lookout"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run lookout {args:?}: {e}"))
}

/// One notification a [`WebhookReceiver`] got: Alertmanager's webhook
/// JSON and when it arrived.
#[derive(Clone, Debug)]
pub struct WebhookMessage {
    pub at: Instant,
    pub body: serde_json::Value,
}

impl WebhookMessage {
    /// `status` of the notification: "firing" or "resolved".
    pub fn status(&self) -> &str {
        self.body["status"].as_str().unwrap_or("")
    }

    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.body["alerts"].as_array().cloned().unwrap_or_default()
    }

    /// `label` of every alert, in the order sent.
    pub fn alert_labels(&self, label: &str) -> Vec<String> {
        self.alerts()
            .iter()
            .map(|a| a["labels"][label].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// A webhook receiver on a free port that records the JSON bodies it is
/// sent, with their arrival times, and answers 204.
pub struct WebhookReceiver {
    pub server: CaptureServer,
}

impl Default for WebhookReceiver {
    fn default() -> Self {
        Self::start()
    }
}

impl WebhookReceiver {
    pub fn start() -> WebhookReceiver {
        WebhookReceiver {
            server: CaptureServer::start(),
        }
    }

    /// The URL to put in a `webhook_configs` entry.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.server.addr)
    }

    /// Every notification so far, oldest first.
    pub fn messages(&self) -> Vec<WebhookMessage> {
        self.server
            .requests()
            .into_iter()
            .map(|r| {
                assert_eq!(
                    (r.method.as_str(), r.path.as_str()),
                    ("POST", "/hook"),
                    "unexpected request to the webhook"
                );
                let body = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
                    panic!(
                        "webhook body is not JSON ({e}): {}",
                        String::from_utf8_lossy(&r.body)
                    )
                });
                WebhookMessage { at: r.at, body }
            })
            .collect()
    }

    /// Waits until at least `n` notifications arrived; panics with what
    /// arrived and `context` (a log) otherwise.
    pub fn wait_for_count(
        &self,
        n: usize,
        timeout: Duration,
        context: impl Fn() -> String,
    ) -> Vec<WebhookMessage> {
        wait_for(timeout, || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
        .unwrap_or_else(|| {
            panic!(
                "expected {n} webhook notifications within {timeout:?}, got:\n{:#?}\n{}",
                self.messages().iter().map(|m| &m.body).collect::<Vec<_>>(),
                context()
            )
        })
    }
}

/// Debian's `prometheus-alertmanager` on a free port, with gossip off and
/// its own storage; killed when dropped.
pub struct Alertmanager {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Alertmanager {
    pub const PROGRAM: &str = "prometheus-alertmanager";

    /// Starts Alertmanager with `config_yaml`, or returns `None` (after
    /// [`require`]) when it is not installed.
    pub fn start(config_yaml: &str) -> Option<Alertmanager> {
        if !require(
            "prometheus-alertmanager (Debian package prometheus-alertmanager)",
            have_program(Self::PROGRAM),
        ) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_yaml).expect("config");
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log");
        let child = Command::new(Self::PROGRAM)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let am = Alertmanager { addr, child, dir };
        if wait_for(Duration::from_secs(30), || {
            http_get(am.addr, "/-/ready", &[])
                .ok()
                .filter(|r| r.status == 200)
        })
        .is_none()
        {
            panic!("alertmanager did not become ready; its log:\n{}", am.log());
        }
        Some(am)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// `GET /api/v2/alerts`: the alerts Alertmanager holds that have not
    /// resolved.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let r = http_get(self.addr, "/api/v2/alerts", &[])
            .unwrap_or_else(|e| panic!("GET alertmanager /api/v2/alerts: {e}"));
        assert_eq!(r.status, 200, "alertmanager /api/v2/alerts: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("alertmanager json");
        v.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_times() {
        assert_eq!(super::rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            super::rfc3339_ms("2025-01-06T02:00:00.123Z"),
            Some(1_736_128_800_123)
        );
        assert_eq!(
            super::rfc3339_ms("2024-02-29T23:59:59.5Z"),
            Some(1_709_251_199_500)
        );
        assert_eq!(super::rfc3339_ms("2025-01-06T10:00:00+08:00"), None);
    }
}
