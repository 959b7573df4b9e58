#![no_main]
//! Parsers of what daemons answer (Docker's /system/df, kube-proxy's
//! /healthz, the kubelet's /stats/summary, RFC 3339 times, Docker's human
//! sizes) never panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lookout_agent::samplers::kubelet_summary::parse(data, None);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = lookout_agent::clock::parse_rfc3339(text);
    let _ = lookout_agent::samplers::docker::parse_human_size(text);
    let _ = lookout_agent::samplers::node_health::kube_proxy_sync_age(text);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = lookout_agent::samplers::docker::data_usage::parse(&v);
    }
});
