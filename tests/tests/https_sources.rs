//! Sources read over HTTPS, against a real TLS server (`openssl s_server`):
//! the agent's kubelet summary and the collector's control-plane probes,
//! each with a configured CA (a certificate from another CA is refused) and
//! with `insecure_skip_verify` (the default for self-signed kubelets,
//! schedulers and controller-managers).

use std::path::Path;
use std::time::Duration;

use lookout_kubesim::{SimConfig, Simulator};
use lookout_tests::tls::{TlsFileServer, make_certs};
use lookout_tests::{Agent, Collector, have_program, require, url_encode, wait_for};

const SUMMARY: &str = r#"{"node": {"nodeName": "n1"}, "pods": [{
  "podRef": {"name": "web-0", "namespace": "shop", "uid": "u-1"},
  "containers": [{"name": "app", "cpu": {"usageCoreNanoSeconds": 42000000000}}]
}]}"#;

fn agent_reading(url: &str, tls: &str) -> Agent {
    Agent::start(&format!(
        "samplers:\n  host: {{enabled: false}}\n  containers: {{enabled: false}}\n  \
         docker: {{enabled: false}}\n  kubelet: {{enabled: false}}\n  \
         kube_proxy: {{enabled: false}}\n  kubelet_summary:\n    enabled: true\n    \
         url: {url}\n    interval: 1s\n    timeout: 900ms\n{tls}"
    ))
}

fn summary_state(a: &Agent) -> Option<(f64, Option<f64>)> {
    let s = a.scrape();
    let ok = s.value(
        "lookout_agent_sampler_success",
        &[("sampler", "kubelet_summary")],
    )?;
    let cpu = s.value(
        "container_cpu_usage_seconds_total",
        &[
            ("namespace", "shop"),
            ("pod", "web-0"),
            ("container", "app"),
        ],
    );
    Some((ok, cpu))
}

/// Two CAs: the server's, and another whose certificate the server's must
/// not pass for.
fn two_cas(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (ours, theirs) = (dir.join("ours"), dir.join("theirs"));
    for d in [&ours, &theirs] {
        std::fs::create_dir_all(d).expect("cert dir");
        make_certs(d);
    }
    (ours, theirs)
}

#[test]
fn the_kubelet_summary_is_read_over_https_and_a_foreign_certificate_refused() {
    if !require("openssl", have_program("openssl")) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (ours, theirs) = two_cas(dir.path());
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root).expect("www");
    let server = TlsFileServer::start(&ours, &root);
    server.put("/stats/summary", SUMMARY);
    let url = server.url("/stats/summary");

    let with_ca = agent_reading(
        &url,
        &format!(
            "    insecure_skip_verify: false\n    ca_file: {}\n",
            ours.join("ca.crt").display()
        ),
    );
    let other_ca = agent_reading(
        &url,
        &format!(
            "    insecure_skip_verify: false\n    ca_file: {}\n",
            theirs.join("ca.crt").display()
        ),
    );
    let skip_verify = agent_reading(&url, "    insecure_skip_verify: true\n");

    for (name, agent) in [
        ("with the CA", &with_ca),
        ("insecure_skip_verify", &skip_verify),
    ] {
        let got = wait_for(Duration::from_secs(20), || {
            summary_state(agent).filter(|&(ok, cpu)| ok == 1.0 && cpu.is_some())
        });
        let Some((_, cpu)) = got else {
            panic!(
                "{name}: no summary over https; scrape:\n{}\nlog:\n{}",
                agent.scrape().text,
                agent.log()
            );
        };
        assert_eq!(cpu, Some(42.0), "{name}");
    }

    let refused = wait_for(Duration::from_secs(20), || {
        summary_state(&other_ca).filter(|&(ok, _)| ok == 0.0)
    });
    assert!(
        refused.is_some_and(|(_, cpu)| cpu.is_none()),
        "a certificate from another CA must fail the sampler and give no series; scrape:\n{}",
        other_ca.scrape().text
    );
    let log = other_ca.log().to_lowercase();
    assert!(
        log.contains("sampler kubelet_summary failed") && log.contains("certificate"),
        "the log says the certificate was the problem:\n{log}"
    );
}

fn up(c: &Collector, job: &str) -> Option<f64> {
    let r = c.get(&format!(
        "/api/v1/query?query={}",
        url_encode(&format!("up{{job=\"{job}\"}}"))
    ));
    let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn control_plane_probes_verify_https_with_a_ca_or_accept_any_certificate() {
    if !require("openssl", have_program("openssl")) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (ours, theirs) = two_cas(dir.path());
    let (ours_root, theirs_root) = (dir.path().join("www-ours"), dir.path().join("www-theirs"));
    for d in [&ours_root, &theirs_root] {
        std::fs::create_dir_all(d).expect("www");
    }
    let healthy = "[+]ping ok\n[+]leaderElection ok\nhealthz check passed\n";
    let scheduler = TlsFileServer::start(&ours, &ours_root);
    scheduler.put("/healthz?verbose", healthy);
    let foreign = TlsFileServer::start(&theirs, &theirs_root);
    foreign.put("/healthz?verbose", healthy);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = rt
        .block_on(Simulator::start(SimConfig {
            nodes: 1,
            pods_per_node: 1,
            node_ip_block: 109,
            ..SimConfig::default()
        }))
        .expect("the simulator starts");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    let collector_with = |tls: &str| {
        Collector::start(&format!(
            "self_scrape_interval: 0s\nkube:\n  enabled: true\n  kubeconfig: {}\n  interval: 1s\n  \
             probes:\n    interval: 1s\n    timeout: 900ms\n    nodes: false\n    \
             scheduler: [{}]\n    controller_manager: [{}]\n{tls}",
            kubeconfig.display(),
            scheduler.url(""),
            foreign.url(""),
        ))
    };
    let verifying = collector_with(&format!(
        "    insecure_skip_verify: false\n    ca_file: {}\n",
        ours.join("ca.crt").display()
    ));
    let accepting = collector_with("");

    let seen = wait_for(Duration::from_secs(30), || {
        Some((
            up(&verifying, "kube-scheduler")?,
            up(&verifying, "kube-controller-manager")?,
            up(&accepting, "kube-scheduler")?,
            up(&accepting, "kube-controller-manager")?,
        ))
        .filter(|&(a, b, c, d)| (a, b, c, d) == (1.0, 0.0, 1.0, 1.0))
    });
    assert!(
        seen.is_some(),
        "verifying: scheduler (our CA) up, controller-manager (another CA) down; \
         accepting any: both up. Got verifying {:?}/{:?}, accepting {:?}/{:?}\nlog:\n{}",
        up(&verifying, "kube-scheduler"),
        up(&verifying, "kube-controller-manager"),
        up(&accepting, "kube-scheduler"),
        up(&accepting, "kube-controller-manager"),
        verifying.log()
    );
    drop((verifying, accepting));
    let _guard = rt.enter();
    sim.shutdown();
}
