//! `lookout.yaml`: the collector's configuration. Every field has a default,
//! so an empty file (or none) runs a collector on loopback with storage in
//! `/var/lib/lookout`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lookout_agent::config::{ConfigError, FieldError, load_checked, no_errors, parse_checked};
use serde::{Deserialize, Serialize};

/// Default port: beside the agent's 9779, clear of Prometheus (9090),
/// Alertmanager (9093) and node_exporter (9100).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9780";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address for the HTTP API, remote-write ingest and /metrics.
    pub listen: String,
    pub storage: StorageConfig,
    pub ingest: IngestConfig,
    pub tls: Option<TlsConfig>,
    /// Stores that receive a copy of everything ingested.
    pub forward: Vec<ForwardConfig>,
    pub api: ApiConfig,
    pub rules: RulesConfig,
    pub alerting: AlertingConfig,
    /// Routing, grouping, inhibition, silences and receivers, in
    /// Alertmanager's shape.
    pub notify: lookout_notify::NotifyConfig,
    /// Following a Kubernetes cluster: its state as kube-state-metrics'
    /// series, control-plane and node probes, the balancer incident.
    pub kube: crate::kube::config::KubeConfig,
    /// How often the collector writes its own series (job="lookout") into
    /// its store, for the self-health rules; 0s: never (for a store that
    /// only replays old data, which samples at the present would push out
    /// of the out-of-order window).
    #[serde(with = "humantime_serde")]
    pub self_scrape_interval: Duration,
}

/// Rule files and how they are evaluated.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Rule files in Prometheus's format; `*` and `?` allowed in the file
    /// name. Relative paths are taken from the config file's folder.
    pub files: Vec<String>,
    /// Interval of groups that set none.
    #[serde(with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// How often firing alerts are re-sent to notification and to
    /// Alertmanagers, so they do not time out there.
    #[serde(with = "humantime_serde")]
    pub resend_delay: Duration,
    /// Labels templates see as `$externalLabels`; also added to alerts sent
    /// out (unless the alert has the label).
    pub external_labels: std::collections::BTreeMap<String, String>,
    /// Base URL of this collector as users reach it, for links in alerts;
    /// empty: `http://<listen>`.
    pub external_url: String,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            files: Vec::new(),
            evaluation_interval: Duration::from_secs(15),
            resend_delay: Duration::from_secs(60),
            external_labels: Default::default(),
            external_url: String::new(),
        }
    }
}

/// Alertmanagers that receive every alert, as Prometheus sends them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingConfig {
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://alertmanager:9093`; alerts go to
    /// `<url>/api/v2/alerts`.
    pub url: String,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            url: String::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.to_string(),
            storage: StorageConfig::default(),
            ingest: IngestConfig::default(),
            tls: None,
            forward: Vec::new(),
            api: ApiConfig::default(),
            rules: RulesConfig::default(),
            alerting: AlertingConfig::default(),
            notify: lookout_notify::NotifyConfig::default(),
            kube: crate::kube::config::KubeConfig::default(),
            self_scrape_interval: Duration::from_secs(15),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub path: PathBuf,
    /// Data older than this (behind the newest sample) is deleted; 0s keeps all.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Oldest blocks are deleted while storage exceeds this; 0 = no limit.
    pub retention_size_mib: u64,
    /// Time span of each on-disk block cut from memory.
    #[serde(with = "humantime_serde")]
    pub block_range: Duration,
    /// How late a sample may arrive (behind the newest) and still be stored:
    /// agents replaying their outbox after an outage land inside it.
    #[serde(with = "humantime_serde")]
    pub out_of_order_window: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("/var/lib/lookout"),
            retention: Duration::from_secs(15 * 24 * 3600),
            retention_size_mib: 0,
            block_range: Duration::from_secs(2 * 3600),
            out_of_order_window: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest compressed request body accepted (413 above).
    pub max_body_mib: u64,
    /// Largest decompressed request accepted (413 above).
    pub max_decoded_mib: u64,
    /// An agent that has not pushed for this long gets `up` 0.
    #[serde(with = "humantime_serde")]
    pub agent_silence: Duration,
    /// Bearer tokens accepted on `POST /api/v1/write`. Empty: no token needed.
    pub tokens: Vec<TokenConfig>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_mib: 16,
            max_decoded_mib: 128,
            agent_silence: Duration::from_secs(60),
            tokens: Vec::new(),
        }
    }
}

/// A bearer token, read from a file or an environment variable (never
/// written in the config itself, so configs can be shared and logged).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (an agent's node name, or `shared`); used in logs and as
    /// the instance of a pusher that does not name itself.
    pub name: String,
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    pub name: String,
    /// Remote-write URL (http).
    pub url: String,
    pub bearer_token_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Bound of this forwarder's outbox; oldest data is dropped (counted)
    /// beyond it.
    pub outbox_max_mib: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Most series one read-API answer may hold.
    pub max_series: usize,
    /// Longest a query may run; a request's `timeout` can only shorten it.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Most samples one query may load and hold.
    pub query_max_samples: usize,
    /// Most points a range query may return per series.
    pub query_max_points_per_series: usize,
    /// How far back an instant selector looks for a sample.
    #[serde(with = "humantime_serde")]
    pub lookback_delta: Duration,
    /// Step of subqueries that give none (`x[1h:]`).
    #[serde(with = "humantime_serde")]
    pub default_subquery_step: Duration,
}

impl ApiConfig {
    /// The engine limits these settings describe.
    pub fn query_limits(&self) -> lookout_promql::Limits {
        lookout_promql::Limits {
            lookback_ms: self.lookback_delta.as_millis() as i64,
            subquery_step_ms: self.default_subquery_step.as_millis() as i64,
            max_points_per_series: self.query_max_points_per_series,
            max_samples: self.query_max_samples,
            timeout: self.query_timeout,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        let limits = lookout_promql::Limits::default();
        ApiConfig {
            max_series: 500_000,
            query_timeout: limits.timeout,
            query_max_samples: limits.max_samples,
            query_max_points_per_series: limits.max_points_per_series,
            lookback_delta: Duration::from_millis(limits.lookback_ms as u64),
            default_subquery_step: Duration::from_millis(limits.subquery_step_ms as u64),
        }
    }
}

impl Config {
    /// Loads a config file; relative rule-file paths are taken from the
    /// file's folder, so the config means the same from any working
    /// directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut cfg = load_checked(path, Config::validate)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        for f in cfg.rules.files.iter_mut() {
            if !Path::new(f.as_str()).is_absolute() {
                *f = base.join(f.as_str()).display().to_string();
            }
        }
        for p in [&mut cfg.kube.kubeconfig, &mut cfg.kube.probes.ca_file]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for r in &mut cfg.kube.probes.routers {
            if let Some(p) = r.password_file.as_mut()
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        parse_checked(text, origin, Config::validate)
    }

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
                format!("{:?} is not an address like 0.0.0.0:9780", self.listen),
            );
        }
        let s = &self.storage;
        if s.path.as_os_str().is_empty() {
            err("storage.path", "must not be empty".into());
        }
        let a = &self.api;
        if a.query_timeout < Duration::from_millis(100) {
            err("api.query_timeout", "must be at least 100ms".into());
        }
        if a.query_max_samples == 0 {
            err("api.query_max_samples", "must be positive".into());
        }
        if a.query_max_points_per_series == 0 {
            err("api.query_max_points_per_series", "must be positive".into());
        }
        if a.lookback_delta < Duration::from_secs(1) {
            err("api.lookback_delta", "must be at least 1s".into());
        }
        if a.default_subquery_step < Duration::from_millis(1) {
            err("api.default_subquery_step", "must be positive".into());
        }
        if s.block_range < Duration::from_secs(60) {
            err("storage.block_range", "must be at least 1m".into());
        }
        if s.out_of_order_window > s.block_range * 4 {
            err(
                "storage.out_of_order_window",
                "must be at most four block ranges".into(),
            );
        }
        if !s.retention.is_zero() && s.retention < s.block_range {
            err(
                "storage.retention",
                "must be 0s (keep everything) or at least one block range".into(),
            );
        }
        let i = &self.ingest;
        if i.max_body_mib == 0 || i.max_decoded_mib == 0 {
            err(
                "ingest",
                "max_body_mib and max_decoded_mib must be above 0".into(),
            );
        }
        if i.agent_silence < Duration::from_secs(1) {
            err("ingest.agent_silence", "must be at least 1s".into());
        }
        for (n, t) in i.tokens.iter().enumerate() {
            let field = format!("ingest.tokens[{n}]");
            if t.name.is_empty() {
                err(&field, "needs a name".into());
            }
            if t.file.is_some() == t.env.is_some() {
                err(&field, "set exactly one of file or env".into());
            }
        }
        if let Some(tls) = &self.tls
            && (tls.cert_file.as_os_str().is_empty() || tls.key_file.as_os_str().is_empty())
        {
            err("tls", "cert_file and key_file are both required".into());
        }
        let mut names = std::collections::HashSet::new();
        for (n, f) in self.forward.iter().enumerate() {
            let field = format!("forward[{n}]");
            if f.name.is_empty()
                || !f
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                err(&field, "name must be letters, digits, - or _".into());
            }
            if !names.insert(f.name.clone()) {
                err(&field, format!("name {:?} is used twice", f.name));
            }
            match f.url.parse::<hyper::Uri>() {
                Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {}
                Ok(u) if u.scheme_str() == Some("https") => err(
                    &field,
                    "https forwarding is not supported yet; use http (for example through a local TLS proxy)".into(),
                ),
                _ => err(&field, format!("url {:?} is not an http URL", f.url)),
            }
            if f.timeout.is_zero() {
                err(&field, "timeout must be above 0".into());
            }
            if f.outbox_max_mib == 0 {
                err(&field, "outbox_max_mib must be above 0".into());
            }
        }
        let r = &self.rules;
        if r.evaluation_interval < Duration::from_secs(1) {
            err("rules.evaluation_interval", "must be at least 1s".into());
        }
        if r.resend_delay < Duration::from_secs(1) {
            err("rules.resend_delay", "must be at least 1s".into());
        }
        for k in r.external_labels.keys() {
            if !lookout_protocol::model::is_valid_label_name(k) {
                err(
                    "rules.external_labels",
                    format!("{k:?} is not a valid label name"),
                );
            }
        }
        if !r.external_url.is_empty() && !r.external_url.starts_with("http") {
            err(
                "rules.external_url",
                format!("{:?} is not an http(s) URL", r.external_url),
            );
        }
        for (n, am) in self.alerting.alertmanagers.iter().enumerate() {
            let field = format!("alerting.alertmanagers[{n}]");
            match am.url.parse::<hyper::Uri>() {
                Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {}
                _ => err(&field, format!("url {:?} is not an http URL", am.url)),
            }
            if am.timeout.is_zero() {
                err(&field, "timeout must be above 0".into());
            }
        }
        for p in self.notify.validate() {
            if p.is_error() {
                err(&p.path, p.message);
            }
        }
        if self.api.max_series == 0 {
            err("api.max_series", "must be above 0".into());
        }
        if !self.self_scrape_interval.is_zero()
            && self.self_scrape_interval < Duration::from_secs(1)
        {
            errors.push(FieldError {
                field: "self_scrape_interval".into(),
                message: "must be 0s (off) or at least 1s".into(),
            });
        }
        self.kube.validate(&mut errors);
        errors
    }

    /// The same checks as loading, for settings changed after loading
    /// (command-line overrides).
    pub fn ensure_valid(&self, origin: &str) -> Result<(), ConfigError> {
        no_errors(self.validate(), origin)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9780)))
    }

    /// The external URL alerts link to.
    pub fn external_url(&self) -> String {
        if self.rules.external_url.is_empty() {
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", self.listen)
        } else {
            self.rules.external_url.trim_end_matches('/').to_string()
        }
    }

    pub fn default_yaml() -> String {
        include_str!("../../deploy/lookout.yaml").to_string()
    }

    pub fn tsdb_options(&self) -> lookout_tsdb::Options {
        let s = &self.storage;
        lookout_tsdb::Options {
            block_range_ms: s.block_range.as_millis() as i64,
            out_of_order_window_ms: s.out_of_order_window.as_millis() as i64,
            retention_ms: s.retention.as_millis() as i64,
            retention_bytes: s.retention_size_mib << 20,
            ..lookout_tsdb::Options::default()
        }
    }
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            name: String::new(),
            url: String::new(),
            bearer_token_file: None,
            timeout: Duration::from_secs(30),
            outbox_max_mib: 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_is_the_defaults() {
        let parsed = Config::parse(&Config::default_yaml(), "deploy/lookout.yaml").unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn tls_needs_a_certificate_and_a_key() {
        let e = Config::parse("tls:\n  cert_file: a\n", "x.yaml").unwrap_err();
        assert!(
            e.to_string()
                .contains("tls: cert_file and key_file are both required"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::parse("storage:\n  retension: 1d\n", "x.yaml").unwrap_err();
        assert!(e.to_string().contains("storage"), "{e}");
        assert!(e.to_string().contains("retension"), "{e}");
        let e = Config::parse(
            "listen: nope\ningest:\n  tokens:\n    - name: a\n",
            "x.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("listen:"), "{e}");
        assert!(
            e.contains("ingest.tokens[0]: set exactly one of file or env"),
            "{e}"
        );
    }
}
