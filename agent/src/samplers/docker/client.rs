//! The connection to the Docker daemon: bollard with version negotiation,
//! renegotiated whenever a call fails (dockerd may be restarted or upgraded
//! under the agent), and one raw request path for the endpoint whose shape
//! changed between API versions (`/system/df`).

use bollard::Docker;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

pub struct Connection {
    socket: String,
    timeout_secs: u64,
    client: Option<Docker>,
}

impl Connection {
    pub fn new(socket: &str, timeout: std::time::Duration) -> Connection {
        Connection {
            socket: socket.to_string(),
            timeout_secs: timeout.as_secs().max(1),
            client: None,
        }
    }

    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// A client that has negotiated its API version with the daemon.
    pub async fn client(&mut self) -> anyhow::Result<&Docker> {
        if self.client.is_none() {
            let docker = Docker::connect_with_unix(
                &self.socket,
                self.timeout_secs,
                bollard::API_DEFAULT_VERSION,
            )
            .map_err(|e| anyhow::anyhow!("cannot use Docker socket {}: {e}", self.socket))?;
            let docker = docker
                .negotiate_version()
                .await
                .map_err(|e| anyhow::anyhow!("Docker at {} does not answer: {e}", self.socket))?;
            self.client = Some(docker);
        }
        Ok(self.client.as_ref().expect("set above"))
    }

    /// Forgets the client so that the next call reconnects and renegotiates.
    pub fn reset(&mut self) {
        self.client = None;
    }

    /// The negotiated API version (`1.41`), once connected.
    pub fn api_version(&self) -> Option<String> {
        self.client.as_ref().map(|c| c.client_version().to_string())
    }

    /// GETs a JSON document from the daemon, at the negotiated version.
    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.client().await?;
        let version = self.api_version().unwrap_or_else(|| "1.41".to_string());
        get_json(&self.socket, &format!("/v{version}{path}")).await
    }
}

/// A plain HTTP/1.1 GET over the daemon's unix socket.
pub async fn get_json(socket: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {socket}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, "docker")
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    driver.abort();
    if !status.is_success() {
        anyhow::bail!(
            "GET {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(serde_json::from_slice(&body)?)
}
