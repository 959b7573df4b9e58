//! This node's pods as the watch keeps them: a compact record a pod, made
//! from the API object the moment it arrives (the `Pod` itself is dropped),
//! and the image lookup the kubelet summary sampler asks of them.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use k8s_openapi::api::core::v1::Pod;
use lookout_protocol::model::Str;

use super::table::Table;

/// What the agent keeps of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRecord {
    pub namespace: Str,
    pub name: Str,
    pub uid: Str,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`; empty before
    /// the kubelet reports one.
    pub phase: Str,
    /// (container name, image) of the app containers, then the init and
    /// ephemeral ones: the kubelet reports usage for any of them.
    pub containers: Box<[(Str, Str)]>,
}

impl PodRecord {
    /// The record of a pod; `None` for an object without a namespace or a
    /// name, which no kubelet summary can refer to.
    pub fn from_pod(pod: &Pod) -> Option<PodRecord> {
        let meta = &pod.metadata;
        let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty())?;
        let name = meta.name.as_deref().filter(|n| !n.is_empty())?;
        let mut containers = Vec::new();
        if let Some(spec) = &pod.spec {
            let app = spec.containers.iter().map(|c| (&c.name, &c.image));
            let init = spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| (&c.name, &c.image));
            let ephemeral = spec
                .ephemeral_containers
                .iter()
                .flatten()
                .map(|c| (&c.name, &c.image));
            containers.extend(app.chain(init).chain(ephemeral).map(|(name, image)| {
                (
                    Str::from(name.as_str()),
                    Str::from(image.as_deref().unwrap_or("")),
                )
            }));
        }
        Some(PodRecord {
            namespace: namespace.into(),
            name: name.into(),
            uid: meta.uid.as_deref().unwrap_or("").into(),
            phase: pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or("")
                .into(),
            containers: containers.into_boxed_slice(),
        })
    }

    pub fn key(&self) -> String {
        pod_key(&self.namespace, &self.name)
    }

    /// The image a container of this pod was specified with.
    pub fn image(&self, container: &str) -> Option<&str> {
        self.containers
            .iter()
            .find(|(name, _)| name == container)
            .map(|(_, image)| image.as_str())
            .filter(|image| !image.is_empty())
    }
}

/// The table key of a pod.
pub fn pod_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The pods of this node the watch knows.
#[derive(Default)]
pub struct PodSet(Table<PodRecord>);

impl PodSet {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&PodRecord> {
        self.0.get(&pod_key(namespace, name))
    }

    pub fn records(&self) -> impl Iterator<Item = &PodRecord> {
        self.0.values()
    }

    /// The image of `container` in pod `namespace/name`. A non-empty `uid`
    /// that differs from the record's is another pod of the same name (a
    /// StatefulSet's pod recreated), whose spec may differ: no image then.
    pub fn image(&self, namespace: &str, name: &str, uid: &str, container: &str) -> Option<&str> {
        let record = self.get(namespace, name)?;
        if !uid.is_empty() && !record.uid.is_empty() && record.uid != uid {
            return None;
        }
        record.image(container)
    }

    pub fn apply(&mut self, record: PodRecord) {
        self.0.apply(record.key(), record);
    }

    pub fn delete(&mut self, namespace: &str, name: &str) {
        self.0.delete(&pod_key(namespace, name));
    }

    /// A (re-)list starts: the pods it does not return are gone.
    pub fn begin_relist(&mut self) {
        self.0.begin_relist();
    }

    /// The list is complete; returns how many pods it did not return (and
    /// were removed).
    pub fn end_relist(&mut self) -> usize {
        self.0.end_relist().len()
    }
}

/// The pod set shared between the watch (the only writer) and the kubelet
/// summary sampler.
#[derive(Clone, Default)]
pub struct NodePods(Arc<RwLock<PodSet>>);

impl NodePods {
    pub fn read(&self) -> RwLockReadGuard<'_, PodSet> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, PodSet> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("a Pod")
    }

    #[test]
    fn a_pod_becomes_a_compact_record() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web"}, "managedFields": [{"manager": "kubelet"}]},
            "spec": {
                "nodeName": "node-0002",
                "initContainers": [{"name": "migrate", "image": "shop/migrate:3"}],
                "containers": [{"name": "nginx", "image": "nginx:1.27"},
                               {"name": "sidecar", "image": "envoy:1.30"}],
                "ephemeralContainers": [{"name": "debugger", "image": "busybox"}]
            },
            "status": {"phase": "Running"}
        }));
        let r = PodRecord::from_pod(&p).expect("a record");
        assert_eq!(
            (
                r.namespace.as_str(),
                r.name.as_str(),
                r.uid.as_str(),
                r.phase.as_str()
            ),
            ("shop", "web-0", "u-1", "Running")
        );
        let containers: Vec<(&str, &str)> = r
            .containers
            .iter()
            .map(|(n, i)| (n.as_str(), i.as_str()))
            .collect();
        assert_eq!(
            containers,
            [
                ("nginx", "nginx:1.27"),
                ("sidecar", "envoy:1.30"),
                ("migrate", "shop/migrate:3"),
                ("debugger", "busybox"),
            ]
        );
        assert_eq!(r.image("migrate"), Some("shop/migrate:3"));
        assert_eq!(r.image("nope"), None);
        assert_eq!(r.key(), "shop/web-0");
    }

    #[test]
    fn sparse_pods_convert_and_nameless_ones_do_not() {
        let r = PodRecord::from_pod(&pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"containers": [{"name": "c"}]}
        })))
        .expect("a record");
        assert_eq!(r.phase, "");
        assert_eq!(r.uid, "");
        // A container without an image gives no image, not image="".
        assert_eq!(r.image("c"), None);
        let bare = PodRecord::from_pod(&pod(
            serde_json::json!({"metadata": {"name": "p", "namespace": "n"}}),
        ))
        .expect("a record");
        assert!(bare.containers.is_empty());
        for meta in [
            serde_json::json!({"name": "p"}),
            serde_json::json!({"namespace": "n"}),
            serde_json::json!({"name": "", "namespace": "n"}),
        ] {
            assert_eq!(
                PodRecord::from_pod(&pod(serde_json::json!({ "metadata": meta }))),
                None
            );
        }
    }

    fn record(name: &str, uid: &str, image: &str) -> PodRecord {
        PodRecord {
            namespace: "ns".into(),
            name: name.into(),
            uid: uid.into(),
            phase: "Running".into(),
            containers: vec![("app".into(), image.into())].into_boxed_slice(),
        }
    }

    #[test]
    fn images_are_looked_up_by_pod_and_uid() {
        let mut set = PodSet::default();
        set.apply(record("a", "u-a", "app:1"));
        assert_eq!(set.image("ns", "a", "u-a", "app"), Some("app:1"));
        // The summary may carry no uid.
        assert_eq!(set.image("ns", "a", "", "app"), Some("app:1"));
        assert_eq!(set.image("ns", "a", "u-other", "app"), None);
        assert_eq!(set.image("other", "a", "u-a", "app"), None);
        // An update in place (the image of a running pod changed).
        set.apply(record("a", "u-a", "app:2"));
        assert_eq!(set.image("ns", "a", "u-a", "app"), Some("app:2"));
        assert_eq!(set.len(), 1);
        set.delete("ns", "a");
        assert!(set.is_empty());
    }

    #[test]
    fn a_relist_drops_the_pods_it_does_not_return() {
        let mut set = PodSet::default();
        set.begin_relist();
        set.apply(record("a", "1", "x"));
        set.apply(record("b", "2", "x"));
        assert_eq!(set.end_relist(), 0);
        // The watch broke; meanwhile `b` was deleted and `c` created.
        set.begin_relist();
        // Until the list completes the old pods still answer.
        assert!(set.get("ns", "b").is_some());
        set.apply(record("a", "1", "x"));
        set.apply(record("c", "3", "x"));
        assert_eq!(set.end_relist(), 1);
        let mut names: Vec<&str> = set.records().map(|r| r.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["a", "c"]);
    }
}
