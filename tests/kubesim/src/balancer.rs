//! The TCP load balancer in front of the apiserver instances: round robin
//! over the running ones, bytes copied both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::cluster::Core;
use crate::server::TcpHandler;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn handler(core: Arc<Core>) -> TcpHandler {
    let next = Arc::new(AtomicUsize::new(0));
    Arc::new(move |client, token| {
        let core = core.clone();
        let next = next.clone();
        Box::pin(proxy(core, next, client, token))
    })
}

async fn connect_backend(core: &Core, next: &AtomicUsize) -> Option<TcpStream> {
    let backends: &[SocketAddr] = &core.apiserver_addrs;
    let start = next.fetch_add(1, Ordering::Relaxed);
    for offset in 0..backends.len() {
        let i = (start + offset) % backends.len();
        // A stopped instance refuses anyway; skipping it saves the attempt.
        if !core.apiserver_running(i) {
            continue;
        }
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backends[i])).await
        {
            let _ = stream.set_nodelay(true);
            return Some(stream);
        }
    }
    None
}

async fn proxy(
    core: Arc<Core>,
    next: Arc<AtomicUsize>,
    mut client: TcpStream,
    token: CancellationToken,
) {
    let Some(mut backend) = connect_backend(&core, &next).await else {
        tracing::debug!("balancer: no apiserver instance reachable");
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut backend) => {}
        () = token.cancelled() => {}
    }
}
