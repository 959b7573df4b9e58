//! The shipped rule packs pass their unit tests in Lookout and in the real
//! promtool, and both accept every pack.

use std::path::PathBuf;
use std::process::Command;

use lookout_tests::{bin, have_program, require};

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules")
}

fn files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read rules folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

fn run(program: &std::path::Path, args: &[&str], files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn shipped_packs_pass_in_lookout_and_promtool() {
    let packs = files(&rules_dir());
    let tests = files(&rules_dir().join("tests"));
    assert!(
        !packs.is_empty() && !tests.is_empty(),
        "rule packs and their tests are shipped"
    );
    let lookout = bin("lookout");
    let (ok, out) = run(&lookout, &["rules", "check"], &packs);
    assert!(ok, "lookout rules check:\n{out}");
    let (ok, out) = run(&lookout, &["rules", "test"], &tests);
    assert!(ok, "lookout rules test:\n{out}");
    assert_eq!(out.matches("SUCCESS").count(), tests.len(), "{out}");
    if !require(
        "promtool (Debian package prometheus)",
        have_program("promtool"),
    ) {
        return;
    }
    let promtool = PathBuf::from("promtool");
    let (ok, out) = run(&promtool, &["check", "rules"], &packs);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = run(&promtool, &["test", "rules"], &tests);
    assert!(ok, "promtool test rules:\n{out}");
}

#[test]
fn a_failing_unit_test_fails_with_the_difference() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("r.yaml"),
        "groups:\n  - name: g\n    rules:\n      - alert: High\n        expr: x > 1\n        labels: {severity: warning}\n",
    )
    .expect("write rules");
    let test = dir.path().join("t.yaml");
    std::fs::write(
        &test,
        "rule_files: [r.yaml]\ntests:\n  - interval: 1m\n    input_series:\n      - {series: 'x{i=\"a\"}', values: '5 5 5'}\n    alert_rule_test:\n      - eval_time: 2m\n        alertname: High\n        exp_alerts:\n          - exp_labels: {severity: critical, i: a}\n",
    )
    .expect("write test");
    let (ok, out) = run(&bin("lookout"), &["rules", "test"], &[test]);
    assert!(!ok, "a wrong expectation must fail:\n{out}");
    assert!(out.contains("alertname: High"), "{out}");
    assert!(
        out.contains("severity=\"critical\"") && out.contains("severity=\"warning\""),
        "exp and got are both shown:\n{out}"
    );
}
