//! `agent.yaml`: the agent's typed configuration, its defaults and its
//! validation. Every error names the field it is about, in the dotted form an
//! operator can find in the file (`samplers.docker.interval`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the agent looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/lookout/agent.yaml";
/// The agent's default listen address. 9779 is clear of Prometheus (9090),
/// Alertmanager (9093), node_exporter (9100) and the Zabbix ports.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9779";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The node's name as it appears in labels and logs; the hostname when empty.
    pub node_name: String,
    /// Address of the `/metrics` endpoint.
    pub listen: String,
    pub paths: Paths,
    pub samplers: Samplers,
    pub kubernetes: KubernetesConfig,
    pub push: PushConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_name: String::new(),
            listen: DEFAULT_LISTEN.to_string(),
            paths: Paths::default(),
            samplers: Samplers::default(),
            kubernetes: KubernetesConfig::default(),
            push: PushConfig::default(),
        }
    }
}

/// A watch of this node's pods on the Kubernetes API (a field selector on
/// `spec.nodeName`, so the API server sends only them), which gives the
/// kubelet summary's container series their `image`. Off by default: a
/// Docker host has no API server, and Docker names its own images.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    pub enabled: bool,
    /// A kubeconfig file whose user may get, list and watch pods. Left out:
    /// the in-cluster service account, else `$KUBECONFIG` or
    /// `~/.kube/config` (a systemd service usually has none of these).
    pub kubeconfig: Option<PathBuf>,
}

/// Pushing samples to remote-write receivers (the collector, Prometheus,
/// VictoriaMetrics...). No endpoints, no pushing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    pub endpoints: Vec<EndpointConfig>,
    /// How often the latest samples are taken as a batch.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Where unacknowledged batches wait; one subdirectory per endpoint.
    pub outbox_dir: PathBuf,
    /// Bound of each endpoint's outbox; past it the oldest batches are
    /// dropped (and counted).
    pub outbox_max_mib: u64,
    /// The `job` label of pushed series, by sampler, so that existing rules
    /// select them (kube-prometheus uses node-exporter for host series).
    pub jobs: PushJobs,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            endpoints: Vec::new(),
            interval: Duration::from_secs(10),
            outbox_dir: "/var/lib/lookout-agent/outbox".into(),
            outbox_max_mib: 256,
            jobs: PushJobs::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushJobs {
    pub host: String,
    pub containers: String,
    /// Everything else: Docker, node probes, the agent's own series.
    pub agent: String,
}

impl Default for PushJobs {
    fn default() -> Self {
        PushJobs {
            host: "node-exporter".into(),
            containers: "cadvisor".into(),
            agent: "lookout-agent".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Names the endpoint in metrics, logs and its outbox directory; taken
    /// from the URL's host and port when empty.
    #[serde(default)]
    pub name: String,
    /// The receiver's remote-write URL, e.g. http://collector:9780/api/v1/write.
    pub url: String,
    /// A file holding a bearer token sent with every push.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub timeout: Duration,
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

impl EndpointConfig {
    /// The endpoint's name: configured, or `host_port` from the URL.
    pub fn display_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let authority = self
            .url
            .parse::<hyper::Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| self.url.clone());
        authority
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// Where the host's kernel interfaces are mounted; changed when the agent runs
/// in a container with the host's `/proc`, `/sys` and `/` mounted elsewhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    pub proc: PathBuf,
    pub sys: PathBuf,
    pub rootfs: PathBuf,
    pub cgroup: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            proc: "/proc".into(),
            sys: "/sys".into(),
            rootfs: "/".into(),
            cgroup: "/sys/fs/cgroup".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Samplers {
    pub host: HostConfig,
    pub containers: ContainersConfig,
    pub docker: DockerConfig,
    pub kubelet: KubeletConfig,
    pub kube_proxy: KubeProxyConfig,
    pub kubelet_summary: KubeletSummaryConfig,
}

/// When and for how long a sampler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Filesystem types that are not reported (pseudo filesystems).
    pub exclude_fstypes: String,
    /// Mount points that are not reported.
    pub exclude_mountpoints: String,
    /// How long one `statfs` may take before its mount is reported as
    /// failing and left alone until it answers again.
    #[serde(with = "humantime_serde")]
    pub mount_timeout: Duration,
    /// Block devices that are not reported (partitions, loop and ram disks).
    pub exclude_disks: String,
    /// Network interfaces that are not reported (container veths).
    pub exclude_interfaces: String,
}

/// node_exporter's default list of pseudo and virtual filesystem types.
pub const DEFAULT_EXCLUDE_FSTYPES: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
/// Kernel interfaces and container runtimes' private mounts.
pub const DEFAULT_EXCLUDE_MOUNTPOINTS: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// Partitions, loop, ram and floppy devices: whole disks are reported.
pub const DEFAULT_EXCLUDE_DISKS: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";
/// Container veths (the container sampler reports container traffic).
pub const DEFAULT_EXCLUDE_INTERFACES: &str = "^(veth.*|[a-f0-9]{15})$";

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            enabled: true,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            exclude_fstypes: DEFAULT_EXCLUDE_FSTYPES.to_string(),
            exclude_mountpoints: DEFAULT_EXCLUDE_MOUNTPOINTS.to_string(),
            mount_timeout: Duration::from_secs(2),
            exclude_disks: DEFAULT_EXCLUDE_DISKS.to_string(),
            exclude_interfaces: DEFAULT_EXCLUDE_INTERFACES.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainersConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Docker labels copied onto container series as
    /// `container_label_<sanitized name>`. Empty by default: copying every
    /// label is how cAdvisor multiplies a Prometheus's memory.
    pub docker_labels: Vec<String>,
}

impl Default for ContainersConfig {
    fn default() -> Self {
        ContainersConfig {
            enabled: true,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            docker_labels: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The daemon's socket, as `unix:///path` or a plain path.
    pub endpoint: String,
    /// How often to ask `/system/df` for image, container, volume and build
    /// cache sizes. The call walks every layer, so never less than 1m.
    #[serde(with = "humantime_serde")]
    pub data_usage_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub data_usage_timeout: Duration,
    /// Follow the event stream and count die, oom, kill, restart and
    /// health_status as they happen.
    pub events: bool,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            enabled: true,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            endpoint: "unix:///var/run/docker.sock".to_string(),
            data_usage_interval: Duration::from_secs(600),
            data_usage_timeout: Duration::from_secs(300),
            events: true,
        }
    }
}

impl DockerConfig {
    /// The socket path without its `unix://` scheme.
    pub fn socket_path(&self) -> &str {
        self.endpoint
            .strip_prefix("unix://")
            .unwrap_or(&self.endpoint)
    }
}

pub const DEFAULT_KUBELET_URL: &str = "http://127.0.0.1:10248/healthz";
pub const DEFAULT_KUBE_PROXY_URL: &str = "http://127.0.0.1:10256/healthz";

/// A plain-HTTP health endpoint on the node. The two probes differ only in
/// their default URL, so each gets its own type and `Default`.
macro_rules! health_probe_config {
    ($name:ident, $url:expr, $what:literal) => {
        #[doc = concat!("The ", $what, " health probe.")]
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            pub enabled: bool,
            #[serde(with = "humantime_serde")]
            pub interval: Duration,
            #[serde(with = "humantime_serde")]
            pub timeout: Duration,
            pub url: String,
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    enabled: true,
                    interval: Duration::from_secs(10),
                    timeout: Duration::from_secs(2),
                    url: $url.to_string(),
                }
            }
        }
    };
}
health_probe_config!(
    KubeletConfig,
    DEFAULT_KUBELET_URL,
    "kubelet `/healthz` (port 10248)"
);
health_probe_config!(
    KubeProxyConfig,
    DEFAULT_KUBE_PROXY_URL,
    "kube-proxy `/healthz` (port 10256)"
);

pub const DEFAULT_KUBELET_SUMMARY_URL: &str = "https://127.0.0.1:10250/stats/summary";

/// Per-pod and per-container usage from the kubelet's `/stats/summary`, for
/// nodes whose runtime is containerd or CRI-O: Docker does not see their
/// pods, so the containers sampler cannot name them. Off by default: on
/// Docker nodes the cgroup path already covers every container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeletSummaryConfig {
    pub enabled: bool,
    /// `https://` (the kubelet's authenticated port) or `http://`.
    pub url: String,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A file holding a token allowed `nodes/stats` (a service account's),
    /// sent as `Authorization: Bearer`; re-read every run so that rotated
    /// tokens are picked up.
    pub bearer_token_file: Option<PathBuf>,
    /// Accept any server certificate: kubelets serve a self-signed one
    /// unless serving-certificate rotation is on.
    pub insecure_skip_verify: bool,
    /// CA bundle (PEM) to verify the kubelet with when
    /// `insecure_skip_verify` is false; the web roots when empty.
    pub ca_file: Option<PathBuf>,
}

impl Default for KubeletSummaryConfig {
    fn default() -> Self {
        KubeletSummaryConfig {
            enabled: false,
            url: DEFAULT_KUBELET_SUMMARY_URL.to_string(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            bearer_token_file: None,
            insecure_skip_verify: true,
            ca_file: None,
        }
    }
}

macro_rules! schedule_of {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn schedule(&self) -> Schedule {
                Schedule { interval: self.interval, timeout: self.timeout }
            }
        }
    )*};
}
schedule_of!(
    HostConfig,
    ContainersConfig,
    DockerConfig,
    KubeletConfig,
    KubeProxyConfig,
    KubeletSummaryConfig
);

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field (`samplers.docker.interval`), or empty for
    /// the document as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Everything wrong with a config file, reported together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {}", .origin, join_errors(.errors))]
    Invalid {
        origin: String,
        errors: Vec<FieldError>,
    },
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses a YAML document into `T` (an empty document gives the defaults),
/// naming the dotted path of a field that does not fit. The agent's and the
/// collector's config files both load through here.
pub fn parse_yaml<T>(text: &str, origin: &str) -> Result<T, ConfigError>
where
    T: serde::de::DeserializeOwned + Default,
{
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let mut message = inner.to_string();
        // serde_yaml_ng appends "at line L column C" already; keep it, it is
        // the most useful part of a type error.
        if field == "." {
            message = format!("invalid document: {message}");
        }
        ConfigError::Invalid {
            origin: origin.to_string(),
            errors: vec![FieldError {
                field: if field == "." { String::new() } else { field },
                message,
            }],
        }
    })
}

/// Parses YAML with [`parse_yaml`], then runs `validate` and reports all of
/// its findings at once.
pub fn parse_checked<T>(
    text: &str,
    origin: &str,
    validate: impl FnOnce(&T) -> Vec<FieldError>,
) -> Result<T, ConfigError>
where
    T: serde::de::DeserializeOwned + Default,
{
    let config: T = parse_yaml(text, origin)?;
    no_errors(validate(&config), origin)?;
    Ok(config)
}

/// `Ok` when validation found nothing, else every finding under `origin`.
pub fn no_errors(errors: Vec<FieldError>, origin: &str) -> Result<(), ConfigError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            origin: origin.to_string(),
            errors,
        })
    }
}

/// Reads a file and [`parse_checked`]s it, naming the file in errors.
pub fn load_checked<T>(
    path: &Path,
    validate: impl FnOnce(&T) -> Vec<FieldError>,
) -> Result<T, ConfigError>
where
    T: serde::de::DeserializeOwned + Default,
{
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_checked(&text, &path.display().to_string(), validate)
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        load_checked(path, Config::validate)
    }

    /// Parses and validates YAML; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        parse_checked(text, origin, Config::validate)
    }

    /// Checks values that the types alone do not rule out.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut err = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_string(),
                message,
            })
        };
        if self.listen.parse::<SocketAddr>().is_err() {
            err(
                "listen",
                format!(
                    "{:?} is not an address with a port (for example {DEFAULT_LISTEN})",
                    self.listen
                ),
            );
        }
        let s = &self.samplers;
        let schedules = [
            ("samplers.host", s.host.schedule()),
            ("samplers.containers", s.containers.schedule()),
            ("samplers.docker", s.docker.schedule()),
            ("samplers.kubelet", s.kubelet.schedule()),
            ("samplers.kube_proxy", s.kube_proxy.schedule()),
            ("samplers.kubelet_summary", s.kubelet_summary.schedule()),
        ];
        for (name, sched) in schedules {
            if sched.interval < Duration::from_millis(100) {
                err(
                    &format!("{name}.interval"),
                    format!(
                        "must be at least 100ms, got {}",
                        humantime::format_duration(sched.interval)
                    ),
                );
            }
            if sched.timeout.is_zero() || sched.timeout > sched.interval {
                err(
                    &format!("{name}.timeout"),
                    format!(
                        "must be more than 0 and at most the interval ({}), got {}",
                        humantime::format_duration(sched.interval),
                        humantime::format_duration(sched.timeout)
                    ),
                );
            }
        }
        for (field, pattern) in [
            ("samplers.host.exclude_fstypes", &s.host.exclude_fstypes),
            (
                "samplers.host.exclude_mountpoints",
                &s.host.exclude_mountpoints,
            ),
            ("samplers.host.exclude_disks", &s.host.exclude_disks),
            (
                "samplers.host.exclude_interfaces",
                &s.host.exclude_interfaces,
            ),
        ] {
            if let Err(e) = regex::Regex::new(pattern) {
                err(field, format!("invalid regular expression: {e}"));
            }
        }
        if s.host.mount_timeout.is_zero() || s.host.mount_timeout > s.host.timeout {
            err(
                "samplers.host.mount_timeout",
                "must be more than 0 and at most samplers.host.timeout".to_string(),
            );
        }
        if s.docker.data_usage_interval < Duration::from_secs(60) {
            err(
                "samplers.docker.data_usage_interval",
                format!(
                    "must be at least 1m (the call walks every image layer), got {}",
                    humantime::format_duration(s.docker.data_usage_interval)
                ),
            );
        }
        if s.docker.data_usage_timeout.is_zero() {
            err(
                "samplers.docker.data_usage_timeout",
                "must be more than 0".to_string(),
            );
        }
        if s.docker.socket_path().is_empty() || !s.docker.socket_path().starts_with('/') {
            err(
                "samplers.docker.endpoint",
                format!(
                    "{:?} is not a unix socket (write unix:///var/run/docker.sock)",
                    s.docker.endpoint
                ),
            );
        }
        for (i, label) in s.containers.docker_labels.iter().enumerate() {
            if label.is_empty() {
                err(
                    &format!("samplers.containers.docker_labels[{i}]"),
                    "must not be empty".to_string(),
                );
            }
        }
        for (name, url) in [
            ("samplers.kubelet.url", &s.kubelet.url),
            ("samplers.kube_proxy.url", &s.kube_proxy.url),
        ] {
            match url.parse::<hyper::Uri>() {
                Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {}
                _ => err(
                    name,
                    format!(
                        "{:?} is not an http:// URL (the node's health ports speak plain HTTP)",
                        url
                    ),
                ),
            }
        }
        let ks = &s.kubelet_summary;
        match ks.url.parse::<hyper::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => err(
                "samplers.kubelet_summary.url",
                format!(
                    "{:?} is not an http:// or https:// URL (for example {DEFAULT_KUBELET_SUMMARY_URL})",
                    ks.url
                ),
            ),
        }
        for (field, path) in [
            (
                "samplers.kubelet_summary.bearer_token_file",
                &ks.bearer_token_file,
            ),
            ("samplers.kubelet_summary.ca_file", &ks.ca_file),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                err(
                    field,
                    "must not be empty (leave the field out instead)".to_string(),
                );
            }
        }
        if ks.ca_file.is_some() && ks.insecure_skip_verify {
            err(
                "samplers.kubelet_summary.ca_file",
                "is not used while insecure_skip_verify is true; set insecure_skip_verify: false to verify with it".to_string(),
            );
        }
        let k = &self.kubernetes;
        if k.kubeconfig
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            err(
                "kubernetes.kubeconfig",
                "must not be empty (leave it out for the in-cluster account or $KUBECONFIG)"
                    .to_string(),
            );
        }
        if k.enabled
            && let Err(why) = self.kubernetes_node_name()
        {
            err("node_name", why);
        }
        let p = &self.push;
        if p.interval < Duration::from_secs(1) {
            err("push.interval", "must be at least 1s".to_string());
        }
        if p.outbox_max_mib == 0 {
            err("push.outbox_max_mib", "must be at least 1".to_string());
        }
        let mut names = std::collections::HashSet::new();
        for (i, e) in p.endpoints.iter().enumerate() {
            match e.url.parse::<hyper::Uri>() {
                Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {}
                Ok(uri) if uri.scheme_str() == Some("https") => err(
                    &format!("push.endpoints[{i}].url"),
                    "https is not supported by the agent yet; push over http (for example to a local TLS-terminating proxy)".to_string(),
                ),
                _ => err(&format!("push.endpoints[{i}].url"), format!("{:?} is not an http:// URL", e.url)),
            }
            if e.timeout.is_zero() {
                err(
                    &format!("push.endpoints[{i}].timeout"),
                    "must be more than 0".to_string(),
                );
            }
            if !names.insert(e.display_name()) {
                err(
                    &format!("push.endpoints[{i}].name"),
                    format!(
                        "{:?} names two endpoints; give each its own name",
                        e.display_name()
                    ),
                );
            }
        }
        errors
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .parse()
            .unwrap_or_else(|_| DEFAULT_LISTEN.parse().expect("default listen address"))
    }

    /// The node name: configured, else the kernel's hostname.
    pub fn node_name(&self) -> String {
        if !self.node_name.is_empty() {
            return self.node_name.clone();
        }
        hostname().unwrap_or_else(|| "localhost".to_string())
    }

    /// The name the pod watch selects on: `node_name`, else the hostname in
    /// lower case, as the kubelet names its node when not told otherwise.
    /// An error says why neither can be a node's name.
    pub fn kubernetes_node_name(&self) -> Result<String, String> {
        let name = if self.node_name.is_empty() {
            hostname()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| {
                    "kubernetes.enabled needs this node's name, and the hostname is unknown; \
                     set node_name to the node's name in Kubernetes"
                        .to_string()
                })?
                .to_ascii_lowercase()
        } else {
            self.node_name.clone()
        };
        if !is_node_name(&name) {
            return Err(format!(
                "kubernetes.enabled needs this node's name, and {name:?} cannot be one \
                 (lower-case letters, digits, '-' and '.'); set node_name to the node's \
                 name in Kubernetes (kubectl get nodes)"
            ));
        }
        Ok(name)
    }

    /// The defaults as YAML, for `--print-default-config`.
    pub fn default_yaml() -> String {
        serde_yaml_ng::to_string(&Config::default()).unwrap_or_default()
    }
}

/// Whether `name` can name a Kubernetes node: a DNS subdomain (RFC 1123),
/// which also keeps it safe inside a field selector.
pub fn is_node_name(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(yaml: &str) -> Vec<FieldError> {
        match Config::parse(yaml, "agent.yaml") {
            Err(ConfigError::Invalid { errors, .. }) => errors,
            other => panic!("expected errors, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("", "x").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.samplers.kubelet.url, DEFAULT_KUBELET_URL);
        assert_eq!(c.samplers.kube_proxy.url, DEFAULT_KUBE_PROXY_URL);
        assert_eq!(
            c.samplers.docker.data_usage_interval,
            Duration::from_secs(600)
        );
    }

    #[test]
    fn default_yaml_parses_back_to_defaults() {
        let c = Config::parse(&Config::default_yaml(), "defaults").unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.samplers.host.exclude_fstypes, DEFAULT_EXCLUDE_FSTYPES);
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c = Config::parse(
            "samplers:\n  docker:\n    interval: 30s\n  kube_proxy:\n    url: http://10.0.0.1:10256/healthz\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.samplers.docker.interval, Duration::from_secs(30));
        assert_eq!(c.samplers.docker.timeout, Duration::from_secs(5));
        assert!(c.samplers.docker.events);
        assert_eq!(c.samplers.kube_proxy.url, "http://10.0.0.1:10256/healthz");
        assert_eq!(c.samplers.kubelet.url, DEFAULT_KUBELET_URL);
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let errs = errors_of("samplers:\n  docker:\n    intervall: 5s\n");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "samplers.docker.intervall");
        assert!(errs[0].message.contains("unknown field"), "{:?}", errs[0]);
    }

    #[test]
    fn bad_duration_is_named() {
        let errs = errors_of("samplers:\n  host:\n    interval: soon\n");
        assert_eq!(errs[0].field, "samplers.host.interval");
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let push = errors_of(
            "push:\n  endpoints:\n  - url: https://c/api/v1/write\n  - url: http://c:1/w\n  - url: http://c:1/x\n",
        );
        let fields: Vec<_> = push.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["push.endpoints[0].url", "push.endpoints[2].name"]);
        let errs = errors_of(
            "listen: nowhere\nsamplers:\n  docker:\n    data_usage_interval: 30s\n    endpoint: tcp://x\n  host:\n    interval: 5s\n    timeout: 6s\n    exclude_disks: '('\n  kubelet:\n    url: https://x\n",
        );
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "listen",
            "samplers.docker.data_usage_interval",
            "samplers.docker.endpoint",
            "samplers.host.timeout",
            "samplers.host.exclude_disks",
            "samplers.kubelet.url",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        let text = ConfigError::Invalid {
            origin: "agent.yaml".into(),
            errors: errs,
        }
        .to_string();
        assert!(text.starts_with("agent.yaml: "), "{text}");
        assert!(text.contains("must be at least 1m"), "{text}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_yaml_never_panics(input in "(?s).{0,300}") {
            let _ = Config::parse(&input, "fuzz");
        }

        #[test]
        fn yaml_shaped_input_never_panics(input in "(samplers:\n  (host|docker|kubelet):\n    (interval|timeout|url|enabled): [a-z0-9:/.]{0,12}\n){0,4}") {
            let _ = Config::parse(&input, "fuzz");
        }
    }

    #[test]
    fn kubelet_summary_section() {
        let c = Config::parse("", "x").unwrap();
        assert!(!c.samplers.kubelet_summary.enabled);
        assert_eq!(c.samplers.kubelet_summary.url, DEFAULT_KUBELET_SUMMARY_URL);
        assert!(c.samplers.kubelet_summary.insecure_skip_verify);
        let c = Config::parse(
            "samplers:\n  kubelet_summary:\n    enabled: true\n    url: http://10.0.0.5:10255/stats/summary\n    bearer_token_file: /var/run/token\n",
            "x",
        )
        .unwrap();
        assert_eq!(
            c.samplers.kubelet_summary.bearer_token_file.as_deref(),
            Some(Path::new("/var/run/token"))
        );
        let errs = errors_of(
            "samplers:\n  kubelet_summary:\n    url: ftp://x/stats\n    interval: 10s\n    timeout: 20s\n    ca_file: /etc/ca.pem\n",
        );
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "samplers.kubelet_summary.timeout",
                "samplers.kubelet_summary.url",
                "samplers.kubelet_summary.ca_file"
            ]
        );
        let errs = errors_of("samplers:\n  kubelet_summary:\n    insecure: true\n");
        assert_eq!(errs[0].field, "samplers.kubelet_summary.insecure");
    }

    #[test]
    fn kubernetes_section() {
        let c = Config::parse("", "x").unwrap();
        assert!(!c.kubernetes.enabled);
        assert_eq!(c.kubernetes.kubeconfig, None);
        let c = Config::parse(
            "node_name: node-0002\nkubernetes:\n  enabled: true\n  kubeconfig: /etc/lookout/kubeconfig\n",
            "x",
        )
        .unwrap();
        assert!(c.kubernetes.enabled);
        assert_eq!(
            c.kubernetes.kubeconfig.as_deref(),
            Some(Path::new("/etc/lookout/kubeconfig"))
        );
        assert_eq!(c.kubernetes_node_name().as_deref(), Ok("node-0002"));
        let errs = errors_of("kubernetes:\n  enabled: true\n  kubeconfig: ''\n  token: x\n");
        assert_eq!(errs[0].field, "kubernetes.token");
        let errs = errors_of("node_name: Node_2\nkubernetes:\n  enabled: true\n  kubeconfig: ''\n");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["kubernetes.kubeconfig", "node_name"]);
        assert!(
            errs[1].message.contains("\"Node_2\" cannot be one"),
            "{}",
            errs[1]
        );
        // A name that would not do is no error while the watch is off.
        assert!(Config::parse("node_name: Node_2\n", "x").is_ok());
    }

    #[test]
    fn node_names_are_dns_subdomains() {
        for good in ["node-0001", "ip-10-0-0-1.ec2.internal", "a", "localhost"] {
            assert!(is_node_name(good), "{good}");
        }
        let long = "a".repeat(254);
        for bad in [
            "",
            "Node1",
            "node_1",
            "-node",
            "node-",
            "a..b",
            "node.",
            "spec.nodeName=x,y",
            long.as_str(),
        ] {
            assert!(!is_node_name(bad), "{bad}");
        }
        // Without node_name the hostname is used, lower-cased as the
        // kubelet does.
        let c = Config {
            kubernetes: KubernetesConfig {
                enabled: true,
                kubeconfig: None,
            },
            ..Config::default()
        };
        if let Some(h) = hostname().filter(|h| is_node_name(&h.to_ascii_lowercase())) {
            assert_eq!(c.kubernetes_node_name(), Ok(h.to_ascii_lowercase()));
        }
    }

    #[test]
    fn socket_path_strips_scheme() {
        let mut d = DockerConfig::default();
        assert_eq!(d.socket_path(), "/var/run/docker.sock");
        d.endpoint = "/run/docker.sock".into();
        assert_eq!(d.socket_path(), "/run/docker.sock");
    }
}

#[cfg(test)]
mod shipped_example {
    use super::*;

    /// The example in deploy/ documents every default: it must parse and
    /// equal the built-in defaults.
    #[test]
    fn deploy_example_is_the_defaults() {
        let text = include_str!("../../deploy/agent.yaml");
        let parsed = Config::parse(text, "deploy/agent.yaml").unwrap();
        assert_eq!(parsed, Config::default());
    }
}
