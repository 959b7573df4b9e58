//! A kubeconfig for clients of the simulator: plain HTTP, no credentials.

use std::path::Path;

use crate::Error;

/// A kubeconfig whose one context points at `server`.
pub fn render(server: &str) -> String {
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: kubesim\n  cluster:\n    server: {server}\n\
         users:\n\
         - name: kubesim\n  user: {{}}\n\
         contexts:\n\
         - name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim\n    namespace: default\n\
         current-context: kubesim\n\
         preferences: {{}}\n"
    )
}

/// Writes [`render`]`(server)` to `path`.
pub fn write(path: &Path, server: &str) -> Result<(), Error> {
    std::fs::write(path, render(server)).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}
