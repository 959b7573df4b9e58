//! The resource types the simulated apiserver serves.

/// Index of a resource type in [`RESOURCES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind(usize);

/// One served resource type.
#[derive(Debug)]
pub struct ResourceType {
    /// URL segment (`pods`).
    pub plural: &'static str,
    pub singular: &'static str,
    /// `Pod`; lists are `PodList`.
    pub kind: &'static str,
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub namespaced: bool,
    /// Whether `metadata.generation` is kept (bumped on spec changes).
    pub has_generation: bool,
    pub short_names: &'static [&'static str],
    /// Field selectors accepted besides `metadata.name` and `metadata.namespace`.
    pub fields: &'static [&'static str],
}

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether `field` may appear in a field selector for this type.
    pub fn supports_field(&self, field: &str) -> bool {
        field == "metadata.name"
            || (field == "metadata.namespace" && self.namespaced)
            || self.fields.contains(&field)
    }
}

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// Every served type. The order is fixed: [`Kind`] constants index it.
pub static RESOURCES: &[ResourceType] = &[
    ResourceType {
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        group: "",
        version: "v1",
        namespaced: false,
        has_generation: false,
        short_names: &["ns"],
        fields: &["status.phase"],
    },
    ResourceType {
        plural: "nodes",
        singular: "node",
        kind: "Node",
        group: "",
        version: "v1",
        namespaced: false,
        has_generation: false,
        short_names: &["no"],
        fields: &["spec.unschedulable"],
    },
    ResourceType {
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        group: "",
        version: "v1",
        namespaced: true,
        has_generation: false,
        short_names: &["po"],
        fields: POD_FIELDS,
    },
    ResourceType {
        plural: "services",
        singular: "service",
        kind: "Service",
        group: "",
        version: "v1",
        namespaced: true,
        has_generation: false,
        short_names: &["svc"],
        fields: &[],
    },
    ResourceType {
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        group: "",
        version: "v1",
        namespaced: true,
        has_generation: false,
        short_names: &["ep"],
        fields: &[],
    },
    ResourceType {
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        kind: "ReplicationController",
        group: "",
        version: "v1",
        namespaced: true,
        has_generation: true,
        short_names: &["rc"],
        fields: &["status.replicas"],
    },
    ResourceType {
        plural: "events",
        singular: "event",
        kind: "Event",
        group: "",
        version: "v1",
        namespaced: true,
        has_generation: false,
        short_names: &["ev"],
        fields: EVENT_FIELDS,
    },
    ResourceType {
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        group: "coordination.k8s.io",
        version: "v1",
        namespaced: true,
        has_generation: false,
        short_names: &[],
        fields: &[],
    },
    ResourceType {
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        group: "discovery.k8s.io",
        version: "v1",
        namespaced: true,
        has_generation: true,
        short_names: &[],
        fields: &["addressType"],
    },
    ResourceType {
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        group: "apps",
        version: "v1",
        namespaced: true,
        has_generation: true,
        short_names: &["deploy"],
        fields: &[],
    },
    ResourceType {
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        group: "apps",
        version: "v1",
        namespaced: true,
        has_generation: true,
        short_names: &["rs"],
        fields: &["status.replicas"],
    },
    ResourceType {
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        group: "apps",
        version: "v1",
        namespaced: true,
        has_generation: true,
        short_names: &["ds"],
        fields: &[],
    },
    ResourceType {
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        group: "apps",
        version: "v1",
        namespaced: true,
        has_generation: true,
        short_names: &["sts"],
        fields: &[],
    },
];

impl Kind {
    pub const NAMESPACES: Kind = Kind(0);
    pub const NODES: Kind = Kind(1);
    pub const PODS: Kind = Kind(2);
    pub const SERVICES: Kind = Kind(3);
    pub const ENDPOINTS: Kind = Kind(4);
    pub const REPLICATION_CONTROLLERS: Kind = Kind(5);
    pub const EVENTS: Kind = Kind(6);
    pub const LEASES: Kind = Kind(7);
    pub const ENDPOINT_SLICES: Kind = Kind(8);
    pub const DEPLOYMENTS: Kind = Kind(9);
    pub const REPLICA_SETS: Kind = Kind(10);
    pub const DAEMON_SETS: Kind = Kind(11);
    pub const STATEFUL_SETS: Kind = Kind(12);

    pub fn index(self) -> usize {
        self.0
    }

    pub fn info(self) -> &'static ResourceType {
        &RESOURCES[self.0]
    }

    pub fn all() -> impl Iterator<Item = Kind> {
        (0..RESOURCES.len()).map(Kind)
    }

    /// The type served at `/{prefix}/{group_version}/…/{plural}`.
    pub fn lookup(group: &str, version: &str, plural: &str) -> Option<Kind> {
        RESOURCES
            .iter()
            .position(|r| r.group == group && r.version == version && r.plural == plural)
            .map(Kind)
    }

    /// The API groups other than core, in discovery order.
    pub fn groups() -> Vec<&'static str> {
        let mut groups: Vec<&'static str> = Vec::new();
        for r in RESOURCES {
            if !r.group.is_empty() && !groups.contains(&r.group) {
                groups.push(r.group);
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_table() {
        assert_eq!(Kind::PODS.info().kind, "Pod");
        assert_eq!(Kind::LEASES.info().api_version(), "coordination.k8s.io/v1");
        assert_eq!(Kind::STATEFUL_SETS.info().kind, "StatefulSet");
        assert_eq!(
            Kind::lookup("apps", "v1", "deployments"),
            Some(Kind::DEPLOYMENTS)
        );
        assert_eq!(Kind::lookup("", "v1", "deployments"), None);
        assert!(Kind::PODS.info().supports_field("spec.nodeName"));
        assert!(!Kind::NODES.info().supports_field("metadata.namespace"));
    }
}
