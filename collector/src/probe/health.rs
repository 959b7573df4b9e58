//! Kubernetes health answers: `/livez`, `/readyz` and `/healthz` of the
//! apiserver, scheduler and controller-manager (with `?verbose`, one line a
//! check), and etcd's `/health` and `/metrics`.

/// One check of a verbose health answer: `[+]etcd ok` or
/// `[-]etcd failed: reason withheld`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
}

/// The checks of a verbose answer, in order; lines that are not checks
/// (the closing `readyz check passed`) are skipped.
pub fn parse_checks(body: &str) -> Vec<Check> {
    body.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (ok, rest) = if let Some(r) = line.strip_prefix("[+]") {
                (true, r)
            } else if let Some(r) = line.strip_prefix("[-]") {
                (false, r)
            } else {
                return None;
            };
            let name = rest.split_whitespace().next()?;
            Some(Check {
                name: name.to_string(),
                ok,
            })
        })
        .collect()
}

/// kube-proxy's `/healthz` staleness is read by the agent's parser.
pub use lookout_agent::samplers::node_health::kube_proxy_sync_age;

/// etcd's `/health`: `{"health":"true","reason":""}`.
pub fn etcd_healthy(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("health")
                .and_then(|h| h.as_str().map(|s| s == "true"))
        })
        .unwrap_or(false)
}

/// `etcd_server_has_leader` from etcd's `/metrics`.
pub fn etcd_has_leader(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix("etcd_server_has_leader")?;
        let rest = rest.trim_start();
        // `etcd_server_has_leader 1` or with labels `{…} 1`.
        let value = match rest.strip_prefix('{') {
            Some(r) => r.split_once('}')?.1,
            None => rest,
        };
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_answers_give_one_check_a_line() {
        let body = "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]poststarthook/start-informers ok\nreadyz check failed\n";
        let checks = parse_checks(body);
        assert_eq!(checks.len(), 4);
        assert_eq!(
            checks[2],
            Check {
                name: "etcd".into(),
                ok: false
            }
        );
        assert_eq!(checks[3].name, "poststarthook/start-informers");
        assert!(parse_checks("ok").is_empty());
    }

    #[test]
    fn kube_proxy_staleness_is_the_gap_between_its_two_times() {
        let body = r#"{"lastUpdated": "2026-11-23T10:00:00.5Z","currentTime": "2026-11-23T10:02:00.5Z", "nodeEligible": true}"#;
        assert_eq!(kube_proxy_sync_age(body), Some(120.0));
        assert_eq!(kube_proxy_sync_age("ok"), None);
    }

    #[test]
    fn etcd_answers() {
        assert!(etcd_healthy(r#"{"health":"true","reason":""}"#));
        assert!(!etcd_healthy(
            r#"{"health":"false","reason":"RAFT NO LEADER"}"#
        ));
        assert!(!etcd_healthy("garbage"));
        let m = "# HELP etcd_server_has_leader x\n# TYPE etcd_server_has_leader gauge\netcd_server_has_leader 1\n";
        assert_eq!(etcd_has_leader(m), Some(1.0));
        assert_eq!(
            etcd_has_leader("etcd_server_has_leader{a=\"b\"} 0\n"),
            Some(0.0)
        );
        assert_eq!(
            etcd_has_leader("etcd_server_leader_changes_seen_total 3\n"),
            None
        );
    }
}
