//! Listeners that can be stopped and started again on the same address.
//!
//! Stopping closes the listening socket (new connections are refused) and
//! drops every open connection, which is how a crashed process looks from
//! the outside. Starting binds the same port again.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// Handles one accepted TCP connection until it ends or the token fires.
pub type TcpHandler = Arc<
    dyn Fn(TcpStream, CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync,
>;

/// What a listener serves.
#[derive(Clone)]
pub enum Service {
    Http(Router),
    Tcp(TcpHandler),
}

struct Running {
    token: CancellationToken,
    accept: JoinHandle<()>,
}

/// A stoppable listener.
pub struct Listener {
    name: String,
    addr: SocketAddr,
    service: Service,
    shutdown: CancellationToken,
    running: Mutex<Option<Running>>,
}

/// Binds `addr` (port 0 picks a free port).
///
/// A fixed port still held by a listener that is shutting down (a
/// simulator dropped just before another starts on the same ports) is
/// retried for a moment rather than failed at once.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(addr).await {
            Ok(socket) => return Ok(socket),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && addr.port() != 0
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(source) => return Err(Error::Bind { addr, source }),
        }
    }
}

impl Listener {
    /// Serves `service` on an already bound socket until stopped or until
    /// `shutdown` fires.
    pub fn serve(
        name: impl Into<String>,
        socket: TcpListener,
        service: Service,
        shutdown: &CancellationToken,
    ) -> Result<Arc<Listener>, Error> {
        let addr = socket.local_addr().map_err(|source| Error::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let listener = Arc::new(Listener {
            name: name.into(),
            addr,
            service,
            shutdown: shutdown.clone(),
            running: Mutex::new(None),
        });
        let running = listener.spawn(socket);
        // Nothing else can hold the lock yet.
        if let Ok(mut slot) = listener.running.try_lock() {
            *slot = Some(running);
        }
        Ok(listener)
    }

    /// `http://ip:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes the socket and cuts every connection. Returns once new
    /// connections are refused.
    pub async fn stop(&self) {
        let mut slot = self.running.lock().await;
        if let Some(running) = slot.take() {
            running.token.cancel();
            // The accept task owns the socket: once it has returned the port is closed.
            let _ = running.accept.await;
            tracing::info!(listener = %self.name, addr = %self.addr, "stopped");
        }
    }

    /// Listens again on the same address.
    pub async fn start(&self) -> Result<(), Error> {
        let mut slot = self.running.lock().await;
        if slot.is_some() {
            return Ok(());
        }
        let socket = bind(self.addr).await?;
        *slot = Some(self.spawn(socket));
        tracing::info!(listener = %self.name, addr = %self.addr, "started");
        Ok(())
    }

    fn spawn(&self, socket: TcpListener) -> Running {
        let token = self.shutdown.child_token();
        let accept = tokio::spawn(accept_loop(
            self.name.clone(),
            socket,
            self.service.clone(),
            token.clone(),
        ));
        Running { token, accept }
    }
}

async fn accept_loop(
    name: String,
    socket: TcpListener,
    service: Service,
    token: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            accepted = socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                let token = token.clone();
                match &service {
                    Service::Http(router) => {
                        tokio::spawn(serve_http(stream, router.clone(), token));
                    }
                    Service::Tcp(handler) => {
                        tokio::spawn(handler(stream, token));
                    }
                }
            }
            Err(e) => {
                // Usually descriptor exhaustion: back off instead of spinning.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_http(stream: TcpStream, router: Router, token: CancellationToken) {
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::select! {
        _ = conn => {}
        // Dropping the connection closes the socket mid-response, like a crash.
        () = token.cancelled() => {}
    }
}
