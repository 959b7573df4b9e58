//! Per-pod and per-container usage from the kubelet's `/stats/summary`, with
//! cAdvisor's names and the `namespace`, `pod`, `container` labels.
//!
//! On containerd and CRI-O nodes Docker does not see the pods, so the
//! containers sampler cannot name them; the kubelet can. The summary names
//! no images: with the pod watch on (`kubernetes.enabled`), container series
//! get cAdvisor's `image` label from the pod's spec. Every number in the
//! summary is optional: a missing one gives no series, never an invented 0.
//! An answer that is not a summary fails the run, which withdraws the
//! sampler's series (invariant 2) and is logged once until it clears.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HeaderValue};
use lookout_protocol::{Family, Labels};
use serde::Deserialize;

use crate::clock::parse_rfc3339;
use crate::config::KubeletSummaryConfig;
use crate::https::{self, HttpsClient, Verify};
use crate::kube::pods::{NodePods, PodSet};
use crate::registry::Problems;
use crate::schedule::{AsyncSampler, Output};

pub const NAME: &str = "kubelet_summary";

/// A summary is a few kilobytes per pod; 110 pods with volumes stay far
/// below this. Past it the answer is not a summary.
const MAX_BODY: usize = 32 << 20;

// ---- the summary's shape (only what is read; unknown fields are ignored) ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Summary {
    #[serde(deserialize_with = "null_as_empty")]
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodRef,
    #[serde(deserialize_with = "null_as_empty")]
    pub containers: Vec<ContainerStats>,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub network: Option<NetworkStats>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Option<String>,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub rootfs: Option<FsStats>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CpuStats {
    pub usage_core_nano_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MemoryStats {
    pub working_set_bytes: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub usage_bytes: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FsStats {
    pub used_bytes: Option<f64>,
}

/// The pod's network: `interfaces`, and (for the default interface) the same
/// counters inline with its `name`, which older kubelets give alone.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NetworkStats {
    #[serde(flatten)]
    pub default: InterfaceStats,
    #[serde(deserialize_with = "null_as_empty")]
    pub interfaces: Vec<InterfaceStats>,
}

/// The kubelet is written in Go, where an empty list marshals as `null`
/// (a node without pods answers `"pods": null`).
fn null_as_empty<'de, D, T>(de: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(de)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InterfaceStats {
    pub name: Option<String>,
    pub rx_bytes: Option<f64>,
    pub tx_bytes: Option<f64>,
    pub rx_errors: Option<f64>,
    pub tx_errors: Option<f64>,
}

/// Why a body is not a summary.
#[derive(Debug, thiserror::Error)]
#[error("the answer is not a kubelet stats summary: {0}")]
pub struct ParseError(#[from] serde_json::Error);

/// What one summary gives: the families, and how many pods were skipped
/// because they carried no name or namespace.
#[derive(Debug)]
pub struct Parsed {
    pub families: Vec<Family>,
    pub skipped_pods: usize,
}

macro_rules! families {
    ($($idx:ident = ($kind:ident, $name:literal, $help:literal)),* $(,)?) => {
        #[derive(Clone, Copy)]
        #[repr(usize)]
        enum F { $($idx),* }
        fn new_families() -> Vec<Family> {
            vec![$(Family::$kind($name, $help)),*]
        }
    };
}

// Names and help as the containers sampler (and cAdvisor) give them.
families! {
    CpuUsage = (counter, "container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds."),
    MemUsage = (gauge, "container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed."),
    MemWorkingSet = (gauge, "container_memory_working_set_bytes", "Current working set in bytes."),
    MemRss = (gauge, "container_memory_rss", "Size of RSS in bytes."),
    FsUsage = (gauge, "container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem."),
    StartTime = (gauge, "container_start_time_seconds", "Start time of the container since unix epoch in seconds."),
    RxBytes = (counter, "container_network_receive_bytes_total", "Cumulative count of bytes received."),
    RxErrors = (counter, "container_network_receive_errors_total", "Cumulative count of errors encountered while receiving."),
    TxBytes = (counter, "container_network_transmit_bytes_total", "Cumulative count of bytes transmitted."),
    TxErrors = (counter, "container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting."),
}

struct Builder(Vec<Family>);

impl Builder {
    fn push(&mut self, f: F, labels: &Labels, v: Option<f64>) {
        // A NaN or infinity cannot come from JSON, but a negative counter
        // can; neither is a usage figure.
        if let Some(v) = v.filter(|v| v.is_finite() && *v >= 0.0) {
            self.0[f as usize].push(labels.clone(), v);
        }
    }

    fn cpu_and_memory(
        &mut self,
        labels: &Labels,
        cpu: Option<&CpuStats>,
        mem: Option<&MemoryStats>,
    ) {
        if let Some(cpu) = cpu {
            self.push(
                F::CpuUsage,
                &labels.with("cpu", "total"),
                cpu.usage_core_nano_seconds.map(|ns| ns / 1e9),
            );
        }
        if let Some(m) = mem {
            self.push(F::MemWorkingSet, labels, m.working_set_bytes);
            self.push(F::MemRss, labels, m.rss_bytes);
            self.push(F::MemUsage, labels, m.usage_bytes);
        }
    }

    fn interface(&mut self, labels: &Labels, i: &InterfaceStats) {
        let Some(name) = i.name.as_deref().filter(|n| !n.is_empty()) else {
            return;
        };
        let l = labels.with("interface", name);
        self.push(F::RxBytes, &l, i.rx_bytes);
        self.push(F::TxBytes, &l, i.tx_bytes);
        self.push(F::RxErrors, &l, i.rx_errors);
        self.push(F::TxErrors, &l, i.tx_errors);
    }
}

/// Turns a `/stats/summary` body into cAdvisor-named families, with the
/// image of each container `pods` knows. Pure: the same body and pods
/// always give the same families.
pub fn parse(body: &[u8], pods: Option<&PodSet>) -> Result<Parsed, ParseError> {
    let summary: Summary = serde_json::from_slice(body)?;
    let mut b = Builder(new_families());
    let mut skipped_pods = 0;
    for pod in &summary.pods {
        if pod.pod_ref.name.is_empty() || pod.pod_ref.namespace.is_empty() {
            skipped_pods += 1;
            continue;
        }
        let pod_labels = Labels::from_pairs([
            ("namespace", pod.pod_ref.namespace.as_str()),
            ("pod", pod.pod_ref.name.as_str()),
            // The pod-level cgroup, as cAdvisor labels it.
            ("container", ""),
        ]);
        for c in pod.containers.iter().filter(|c| !c.name.is_empty()) {
            let mut labels = pod_labels.with("container", c.name.as_str());
            // Only containers: cAdvisor's pod cgroup series have no image.
            let r = &pod.pod_ref;
            if let Some(image) = pods.and_then(|p| p.image(&r.namespace, &r.name, &r.uid, &c.name))
            {
                labels.set("image", image);
            }
            b.cpu_and_memory(&labels, c.cpu.as_ref(), c.memory.as_ref());
            b.push(
                F::FsUsage,
                &labels,
                c.rootfs.as_ref().and_then(|r| r.used_bytes),
            );
            b.push(
                F::StartTime,
                &labels,
                c.start_time.as_deref().and_then(parse_rfc3339),
            );
        }
        b.cpu_and_memory(&pod_labels, pod.cpu.as_ref(), pod.memory.as_ref());
        if let Some(net) = &pod.network {
            if net.interfaces.is_empty() {
                b.interface(&pod_labels, &net.default);
            } else {
                for i in &net.interfaces {
                    b.interface(&pod_labels, i);
                }
            }
        }
    }
    Ok(Parsed {
        families: b.0,
        skipped_pods,
    })
}

// ---- the sampler ----

pub struct SummarySampler {
    url: hyper::Uri,
    token_file: Option<PathBuf>,
    client: HttpsClient,
    /// The pod watch's pods, when it runs: the source of images.
    pods: Option<NodePods>,
    problems: Problems,
}

impl SummarySampler {
    pub fn new(
        cfg: &KubeletSummaryConfig,
        pods: Option<NodePods>,
    ) -> anyhow::Result<SummarySampler> {
        let url = cfg
            .url
            .parse()
            .with_context(|| format!("samplers.kubelet_summary.url {:?}", cfg.url))?;
        let verify = if cfg.insecure_skip_verify {
            Verify::Nothing
        } else {
            Verify::Roots(cfg.ca_file.as_deref())
        };
        let client = https::client(cfg.timeout, verify).context("samplers.kubelet_summary")?;
        Ok(SummarySampler {
            url,
            token_file: cfg.bearer_token_file.clone(),
            client,
            pods,
            problems: Problems::default(),
        })
    }

    /// `Authorization: Bearer <token>`, re-read every run: projected
    /// service-account tokens rotate. The token never reaches a message.
    fn authorization(&self) -> anyhow::Result<Option<HeaderValue>> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading samplers.kubelet_summary.bearer_token_file {}",
                path.display()
            )
        })?;
        let token = token.trim();
        if token.is_empty() {
            anyhow::bail!(
                "samplers.kubelet_summary.bearer_token_file {} is empty",
                path.display()
            );
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            anyhow::anyhow!(
                "samplers.kubelet_summary.bearer_token_file {} holds characters a header cannot carry",
                path.display()
            )
        })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    async fn fetch(&self) -> anyhow::Result<Bytes> {
        let mut req = Request::get(self.url.clone())
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        if let Some(auth) = self.authorization()? {
            req.headers_mut().insert(AUTHORIZATION, auth);
        }
        // The schedule drops this future at the sampler's timeout, so no
        // deadline of its own is needed.
        let resp = self.client.request(req).await.map_err(|e| {
            anyhow::anyhow!(
                "kubelet {} did not answer: {}",
                self.url,
                crate::registry::error_chain(&e)
            )
        })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer of kubelet {}: {e}", self.url))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            anyhow::bail!(
                "kubelet {} answered HTTP {status}{}: {}",
                self.url,
                match status.as_u16() {
                    401 => " (is bearer_token_file set?)",
                    403 => " (the token needs RBAC on nodes/stats)",
                    _ => "",
                },
                text.trim().chars().take(200).collect::<String>()
            );
        }
        Ok(body)
    }
}

impl AsyncSampler for SummarySampler {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn sample(&mut self, _now: SystemTime) -> anyhow::Result<Output> {
        let body = self.fetch().await?;
        let parsed = {
            let pods = self.pods.as_ref().map(NodePods::read);
            parse(&body, pods.as_deref())
        }
        .with_context(|| format!("kubelet {}", self.url))?;
        if parsed.skipped_pods > 0 {
            self.problems.report(
                NAME,
                "unnamed",
                &format!(
                    "kubelet {} reports pods without a name or namespace; they are left out",
                    self.url
                ),
            );
        } else {
            self.problems.clear(
                NAME,
                "unnamed",
                &format!("kubelet {} names every pod again", self.url),
            );
        }
        let families = parsed
            .families
            .into_iter()
            .filter(|f| !f.samples.is_empty())
            .collect();
        Ok(Output {
            families,
            partial_failures: parsed.skipped_pods,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two pods: `web-0` with two containers (one without memory or a start
    /// time) and two interfaces; `db-0` with an older kubelet's inline
    /// network and no pod-level memory.
    const SUMMARY: &str = r#"{
      "node": {"nodeName": "n1", "cpu": {"usageNanoCores": 5, "usageCoreNanoSeconds": 9000000000},
               "memory": {"availableBytes": 1, "workingSetBytes": 2}},
      "pods": [
        {"podRef": {"name": "web-0", "namespace": "shop", "uid": "u1"},
         "containers": [
           {"name": "nginx", "startTime": "2024-05-01T10:00:00Z",
            "cpu": {"usageNanoCores": 1000, "usageCoreNanoSeconds": 2500000000},
            "memory": {"workingSetBytes": 1048576, "rssBytes": 524288, "usageBytes": 2097152},
            "rootfs": {"usedBytes": 24576}, "logs": {"usedBytes": 1}},
           {"name": "sidecar",
            "cpu": {"usageCoreNanoSeconds": 500000000},
            "rootfs": {"availableBytes": 7}}
         ],
         "cpu": {"usageCoreNanoSeconds": 3000000000},
         "memory": {"workingSetBytes": 1048576},
         "network": {"name": "eth0", "rxBytes": 100, "txBytes": 50, "rxErrors": 0, "txErrors": 0,
           "interfaces": [
             {"name": "eth0", "rxBytes": 100, "txBytes": 50, "rxErrors": 0, "txErrors": 0},
             {"name": "net1", "rxBytes": 7, "txBytes": 8, "rxErrors": 1, "txErrors": 2}
           ]},
         "volume": [{"name": "data", "usedBytes": 3, "pvcRef": {"name": "d", "namespace": "shop"}}]},
        {"podRef": {"name": "db-0", "namespace": "data", "uid": "u2"},
         "containers": [{"name": "pg", "memory": {"workingSetBytes": 4096}}],
         "cpu": {"usageCoreNanoSeconds": 1000000000},
         "network": {"name": "eth0", "rxBytes": 9, "txBytes": 10}}
      ]
    }"#;

    fn rendered(families: &[Family]) -> Vec<String> {
        let mut out = Vec::new();
        for f in families {
            for s in &f.samples {
                out.push(format!("{}{} {}", f.name, s.labels.sorted(), s.value));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn summary_gives_cadvisor_series() {
        let parsed = parse(SUMMARY.as_bytes(), None).unwrap();
        assert_eq!(parsed.skipped_pods, 0);
        let got = rendered(&parsed.families);
        let want = [
            r#"container_cpu_usage_seconds_total{container="",cpu="total",namespace="data",pod="db-0"} 1"#,
            r#"container_cpu_usage_seconds_total{container="",cpu="total",namespace="shop",pod="web-0"} 3"#,
            r#"container_cpu_usage_seconds_total{container="nginx",cpu="total",namespace="shop",pod="web-0"} 2.5"#,
            r#"container_cpu_usage_seconds_total{container="sidecar",cpu="total",namespace="shop",pod="web-0"} 0.5"#,
            r#"container_fs_usage_bytes{container="nginx",namespace="shop",pod="web-0"} 24576"#,
            r#"container_memory_rss{container="nginx",namespace="shop",pod="web-0"} 524288"#,
            r#"container_memory_usage_bytes{container="nginx",namespace="shop",pod="web-0"} 2097152"#,
            r#"container_memory_working_set_bytes{container="",namespace="shop",pod="web-0"} 1048576"#,
            r#"container_memory_working_set_bytes{container="nginx",namespace="shop",pod="web-0"} 1048576"#,
            r#"container_memory_working_set_bytes{container="pg",namespace="data",pod="db-0"} 4096"#,
            r#"container_network_receive_bytes_total{container="",interface="eth0",namespace="data",pod="db-0"} 9"#,
            r#"container_network_receive_bytes_total{container="",interface="eth0",namespace="shop",pod="web-0"} 100"#,
            r#"container_network_receive_bytes_total{container="",interface="net1",namespace="shop",pod="web-0"} 7"#,
            r#"container_network_receive_errors_total{container="",interface="eth0",namespace="shop",pod="web-0"} 0"#,
            r#"container_network_receive_errors_total{container="",interface="net1",namespace="shop",pod="web-0"} 1"#,
            r#"container_network_transmit_bytes_total{container="",interface="eth0",namespace="data",pod="db-0"} 10"#,
            r#"container_network_transmit_bytes_total{container="",interface="eth0",namespace="shop",pod="web-0"} 50"#,
            r#"container_network_transmit_bytes_total{container="",interface="net1",namespace="shop",pod="web-0"} 8"#,
            r#"container_network_transmit_errors_total{container="",interface="eth0",namespace="shop",pod="web-0"} 0"#,
            r#"container_network_transmit_errors_total{container="",interface="net1",namespace="shop",pod="web-0"} 2"#,
            r#"container_start_time_seconds{container="nginx",namespace="shop",pod="web-0"} 1714557600"#,
        ];
        assert_eq!(got, want, "got:\n{}", got.join("\n"));
    }

    #[test]
    fn missing_numbers_give_no_series() {
        let parsed = parse(SUMMARY.as_bytes(), None).unwrap();
        let got = rendered(&parsed.families);
        // The sidecar has neither memory nor a start time nor rootfs usage,
        // pg has no cpu: nothing is invented for them.
        for absent in [
            r#"container_memory_working_set_bytes{container="sidecar""#,
            r#"container_start_time_seconds{container="sidecar""#,
            r#"container_fs_usage_bytes{container="sidecar""#,
            r#"container_cpu_usage_seconds_total{container="pg""#,
            r#"container_network_receive_errors_total{container="",interface="eth0",namespace="data""#,
        ] {
            assert!(
                !got.iter().any(|s| s.starts_with(absent)),
                "{absent} should be absent"
            );
        }
    }

    #[test]
    fn known_pods_give_container_series_their_image() {
        use crate::kube::pods::PodRecord;
        let record = |ns: &str, name: &str, uid: &str, containers: &[(&str, &str)]| PodRecord {
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
            phase: "Running".into(),
            containers: containers
                .iter()
                .map(|(c, i)| ((*c).into(), (*i).into()))
                .collect(),
        };
        let mut pods = PodSet::default();
        pods.apply(record(
            "shop",
            "web-0",
            "u1",
            &[("nginx", "nginx:1.27"), ("sidecar", "envoy:1.30")],
        ));
        // db-0 of the summary is another pod of that name (its uid is u2).
        pods.apply(record("data", "db-0", "u0", &[("pg", "postgres:16")]));
        let got = rendered(&parse(SUMMARY.as_bytes(), Some(&pods)).unwrap().families);
        for want in [
            r#"container_cpu_usage_seconds_total{container="nginx",cpu="total",image="nginx:1.27",namespace="shop",pod="web-0"} 2.5"#,
            r#"container_cpu_usage_seconds_total{container="sidecar",cpu="total",image="envoy:1.30",namespace="shop",pod="web-0"} 0.5"#,
            r#"container_memory_working_set_bytes{container="nginx",image="nginx:1.27",namespace="shop",pod="web-0"} 1048576"#,
            r#"container_fs_usage_bytes{container="nginx",image="nginx:1.27",namespace="shop",pod="web-0"} 24576"#,
            r#"container_start_time_seconds{container="nginx",image="nginx:1.27",namespace="shop",pod="web-0"} 1714557600"#,
            // Pod-level series keep no image, as cAdvisor's pod cgroups;
            // an unknown pod keeps the summary's labels alone.
            r#"container_cpu_usage_seconds_total{container="",cpu="total",namespace="shop",pod="web-0"} 3"#,
            r#"container_network_receive_bytes_total{container="",interface="eth0",namespace="shop",pod="web-0"} 100"#,
            r#"container_memory_working_set_bytes{container="pg",namespace="data",pod="db-0"} 4096"#,
        ] {
            assert!(
                got.iter().any(|s| s == want),
                "{want} missing from:\n{}",
                got.join("\n")
            );
        }
        let with_image = got.iter().filter(|s| s.contains("image=")).count();
        assert_eq!(with_image, 7, "{}", got.join("\n"));
        // The same series as without pods, with only the image added.
        let without = parse(SUMMARY.as_bytes(), None).unwrap();
        assert_eq!(rendered(&without.families).len(), got.len());
    }

    #[test]
    fn empty_and_unnamed_pods() {
        assert!(rendered(&parse(b"{}", None).unwrap().families).is_empty());
        assert!(rendered(&parse(br#"{"pods": null}"#, None).unwrap().families).is_empty());
        let parsed = parse(
            br#"{"pods": [{"podRef": {"name": "p", "namespace": "n"}, "containers": null,
                 "network": {"interfaces": null, "name": "eth0", "rxBytes": 1}}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            rendered(&parsed.families),
            [
                r#"container_network_receive_bytes_total{container="",interface="eth0",namespace="n",pod="p"} 1"#
            ]
        );
        let parsed = parse(
            br#"{"pods": [{"podRef": {"name": "x"}, "cpu": {"usageCoreNanoSeconds": 1}}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(parsed.skipped_pods, 1);
        assert!(rendered(&parsed.families).is_empty());
    }

    #[test]
    fn bad_bodies_are_errors_with_a_position() {
        for body in [
            &b"<html>Unauthorized</html>"[..],
            br#"{"pods": [{"podRef": {"name": "a", "namespace": "b"}, "cpu": {"usageCoreNanoSeconds": "many"}}]}"#,
            br#"{"pods": {}}"#,
            b"",
        ] {
            let err = parse(body, None).unwrap_err().to_string();
            assert!(err.contains("not a kubelet stats summary"), "{err}");
            assert!(err.contains("line 1 column"), "{err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(input in "(?s).{0,400}") {
            let _ = parse(input.as_bytes(), None);
        }
    }
}
