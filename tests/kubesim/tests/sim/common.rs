//! Helpers shared by the simulator tests.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use lookout_kubesim::{SimConfig, SimHandle, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A small cluster with test timings and no per-node endpoints.
pub fn small() -> SimConfig {
    SimConfig {
        nodes: 3,
        pods_per_node: 5,
        lease_renew: Duration::from_secs(1),
        node_grace: Duration::from_secs(4),
        bookmark_interval: Duration::from_secs(1),
        node_endpoints: false,
        crashloop_interval: Duration::from_millis(500),
        rollout_delay: Duration::from_millis(200),
        ..SimConfig::default()
    }
}

pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(Simulator::start(config).await?)
}

/// A kube client for `url` (plain HTTP, no credentials).
pub fn client(url: &str) -> anyhow::Result<kube::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new(url.parse().context("parsing the URL")?);
    Ok(kube::Client::try_from(config)?)
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
pub async fn http(method: &str, url: &str) -> anyhow::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("not an http URL: {url}"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let exchange = async {
        let mut stream = TcpStream::connect(host).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("request timed out")??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no header end in {text:?}"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body
            .split_once("\r\n")
            .ok_or_else(|| anyhow!("bad chunk"))?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).ok_or_else(|| anyhow!("short chunk"))?);
        body = rest.get(size + 2..).unwrap_or("");
    }
}

/// Whether a TCP connection to `url`'s host is refused.
pub async fn refused(url: &str) -> bool {
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    matches!(TcpStream::connect(host).await, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Polls `check` every 100 ms until it yields a value or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() > deadline {
            match last_error {
                Some(e) => bail!("timed out waiting for {what}; last error: {e:#}"),
                None => bail!("timed out waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs a control route and checks it succeeded.
pub async fn control(sim: &SimHandle, route: &str) -> anyhow::Result<()> {
    let (status, body) = http("POST", &format!("{}{route}", sim.control_url())).await?;
    if status != 200 {
        bail!("{route}: {status} {body}");
    }
    Ok(())
}
