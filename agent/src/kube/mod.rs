//! Kubernetes from the node's side: the API client (the collector builds
//! its own through [`client`] too), and the optional watch of this node's
//! pods that names the images of the kubelet summary's containers.

pub mod pods;
pub mod table;
pub mod watch;

use std::path::Path;

use anyhow::Context as _;

/// A Kubernetes client from `kubeconfig`, or without one from what
/// `kube::Config::infer` finds: the in-cluster service account, else
/// `$KUBECONFIG` or `~/.kube/config`. `setting` is the config field that
/// named the file, for errors. Returns the client and the server it talks to.
pub async fn client(
    kubeconfig: Option<&Path>,
    setting: &str,
) -> anyhow::Result<(kube::Client, String)> {
    // kube's TLS is rustls; Lookout picks the ring provider for the whole
    // process. A second call finds it installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("{setting} {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("{setting} {}", path.display()))?
        }
        None => kube::Config::infer().await.with_context(|| {
            format!(
                "no {setting} given, and neither in-cluster credentials nor $KUBECONFIG or ~/.kube/config work"
            )
        })?,
    };
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .with_context(|| format!("cannot build a Kubernetes client for {server}"))?;
    Ok((client, server))
}
