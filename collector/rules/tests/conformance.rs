//! The peer rule sets load unmodified, and the kubernetes-mixin's own rule
//! unit tests pass. The data lives beside the repository in
//! `../shared/conformance` (or `$LOOKOUT_CONFORMANCE_DIR`).

use std::path::PathBuf;

fn conformance_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("LOOKOUT_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "conformance data missing at {} (set LOOKOUT_CONFORMANCE_DIR)",
            dir.display()
        );
    }
    eprintln!(
        "note: conformance data not found at {}; skipping",
        dir.display()
    );
    None
}

fn yaml_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read conformance folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_peer_rule_file_loads() {
    let Some(dir) = conformance_dir() else { return };
    let mut files = yaml_files(&dir.join("kube-prometheus"));
    files.extend(yaml_files(&dir.join("kubernetes-mixin")));
    assert_eq!(
        files.len(),
        10,
        "expected 8 kube-prometheus and 2 mixin files: {files:?}"
    );
    let (groups, lints) = lookout_rules::load_files(&files).unwrap_or_else(|e| panic!("{e}"));
    let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
    eprintln!(
        "{} groups, {rules} rules, {} lints",
        groups.len(),
        lints.len()
    );
    for l in &lints {
        eprintln!(
            "lint: {}: group {:?}: {}",
            l.file.display(),
            l.group,
            l.message
        );
    }
    let kube_prometheus: usize = groups
        .iter()
        .filter(|g| {
            g.file
                .parent()
                .is_some_and(|p| p.ends_with("kube-prometheus"))
        })
        .map(|g| g.rules.len())
        .sum();
    assert_eq!(kube_prometheus, 234, "kube-prometheus ships 234 rules");
    // promtool flags the repeated apiserver availability rules in
    // kubernetesControlPlane.rules.yaml and in the mixin's rules they come
    // from (and nowhere else); so does the loader, as a lint.
    assert!(
        lints
            .iter()
            .all(|l| l.file.ends_with("kubernetesControlPlane.rules.yaml")
                || l.file.ends_with("kubernetes-mixin/prometheus_rules.yaml"))
    );
    assert!(
        lints
            .iter()
            .any(|l| l.file.ends_with("kubernetesControlPlane.rules.yaml"))
    );
}

#[test]
fn kubernetes_mixin_unit_tests_pass() {
    let Some(dir) = conformance_dir() else { return };
    let files = yaml_files(&dir.join("kubernetes-mixin/tests"));
    assert_eq!(files.len(), 8);
    let mut failed = Vec::new();
    let mut groups = 0;
    for f in &files {
        let report = lookout_rules::unittest::run_file(f);
        groups += report.groups;
        eprintln!(
            "{}: {} test groups, {} failed{}",
            f.file_name().unwrap_or_default().to_string_lossy(),
            report.groups,
            report.failed_groups,
            report
                .error
                .as_deref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        );
        for fail in &report.failures {
            eprintln!("  {fail}");
        }
        if !report.passed() {
            failed.push(f.clone());
        }
    }
    assert_eq!(groups, 113, "the mixin ships 113 test groups");
    assert!(failed.is_empty(), "failing test files: {failed:?}");
}
