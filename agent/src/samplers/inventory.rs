//! What the agent knows about containers beyond their cgroups: names,
//! images, Kubernetes identity, init PIDs. The Docker sampler fills it; the
//! container sampler reads it. When Docker is unreachable the last known
//! inventory stays, so container series keep their names.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// One container as the runtime describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerMeta {
    /// Full 64-hex id.
    pub id: String,
    /// Name without Docker's leading slash.
    pub name: String,
    pub image: String,
    /// Init process, when running.
    pub pid: Option<u32>,
    /// Start time, seconds since the epoch.
    pub started_at: Option<f64>,
    /// `io.kubernetes.pod.namespace`, `io.kubernetes.pod.name`,
    /// `io.kubernetes.container.name`, when present.
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    /// Pod sandboxes ("pause" containers) are not reported on their own.
    pub is_sandbox: bool,
    /// Docker labels, kept only for the names the config allowlists.
    pub allowlisted_labels: Vec<(String, String)>,
}

impl ContainerMeta {
    /// Adds `namespace`, `pod` and `container` for Kubernetes containers.
    pub fn add_identity_labels(&self, labels: &mut lookout_protocol::Labels) {
        for (key, value) in [
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("container", &self.container),
        ] {
            if let Some(v) = value {
                labels.set(key, v.as_str());
            }
        }
    }

    /// Fills the Kubernetes identity from cri-dockerd's container labels.
    pub fn apply_runtime_labels<'a>(
        &mut self,
        labels: impl IntoIterator<Item = (&'a String, &'a String)>,
        allowlist: &[String],
    ) {
        for (k, v) in labels {
            match k.as_str() {
                "io.kubernetes.pod.namespace" => self.namespace = Some(v.clone()),
                "io.kubernetes.pod.name" => self.pod = Some(v.clone()),
                "io.kubernetes.container.name" => self.container = Some(v.clone()),
                "io.kubernetes.docker.type" => self.is_sandbox = v == "podsandbox",
                _ => {}
            }
            if allowlist.iter().any(|a| a == k) {
                self.allowlisted_labels.push((k.clone(), v.clone()));
            }
        }
        self.allowlisted_labels.sort();
    }
}

#[derive(Clone, Default)]
pub struct Inventory {
    inner: Arc<RwLock<HashMap<String, Arc<ContainerMeta>>>>,
}

impl Inventory {
    /// Replaces the whole inventory with a fresh listing.
    pub fn replace(&self, containers: impl IntoIterator<Item = ContainerMeta>) {
        let map = containers
            .into_iter()
            .map(|c| (c.id.clone(), Arc::new(c)))
            .collect();
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    pub fn get(&self, id: &str) -> Option<Arc<ContainerMeta>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<ContainerMeta>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn contains_name(&self, name: &str) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|c| c.name == name)
    }
}

/// Whether `s` is a full container id (64 lowercase hex digits).
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The container id inside a cgroup directory name: `<id>`,
/// `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`.
pub fn id_from_cgroup_name(name: &str) -> Option<&str> {
    let base = name.strip_suffix(".scope").unwrap_or(name);
    let id = base.rsplit_once('-').map(|(_, id)| id).unwrap_or(base);
    is_container_id(id).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "b656fd1e12c67929f4a868696c60abedee20464051f1ad05a22839b7c591892d";

    #[test]
    fn ids_from_cgroup_names() {
        assert_eq!(id_from_cgroup_name(ID), Some(ID));
        assert_eq!(id_from_cgroup_name(&format!("docker-{ID}.scope")), Some(ID));
        assert_eq!(
            id_from_cgroup_name(&format!("cri-containerd-{ID}.scope")),
            Some(ID)
        );
        assert_eq!(id_from_cgroup_name(&format!("crio-{ID}.scope")), Some(ID));
        assert_eq!(id_from_cgroup_name("kubepods-burstable.slice"), None);
        assert_eq!(id_from_cgroup_name(&ID[1..]), None);
    }

    #[test]
    fn runtime_labels_fill_identity_and_allowlist() {
        let labels: HashMap<String, String> = [
            ("io.kubernetes.pod.namespace", "kube-system"),
            ("io.kubernetes.pod.name", "dns-1"),
            ("io.kubernetes.container.name", "coredns"),
            ("io.kubernetes.docker.type", "container"),
            ("com.example.team", "core"),
            ("com.example.other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut m = ContainerMeta::default();
        m.apply_runtime_labels(&labels, &["com.example.team".to_string()]);
        assert_eq!(m.namespace.as_deref(), Some("kube-system"));
        assert_eq!(m.pod.as_deref(), Some("dns-1"));
        assert_eq!(m.container.as_deref(), Some("coredns"));
        assert!(!m.is_sandbox);
        assert_eq!(
            m.allowlisted_labels,
            vec![("com.example.team".to_string(), "core".to_string())]
        );
    }
}
