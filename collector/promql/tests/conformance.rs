//! Runs Prometheus's PromQL test scripts unmodified against the engine.
//!
//! The scripts are read from `$LOOKOUT_CONFORMANCE_DIR/promql/*.test`
//! (default: `../shared/conformance` beside the repository). Every eval is
//! counted as passed, failed or skipped (skipped: it needs native
//! histograms); the test fails when fewer pass than the committed
//! threshold in `conformance-threshold.txt`. Set
//! `LOOKOUT_CONFORMANCE_VERBOSE=1` to print each failure.

mod promqltest;

use std::path::PathBuf;

fn conformance_dir() -> PathBuf {
    match std::env::var_os("LOOKOUT_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

#[test]
fn prometheus_test_scripts() {
    let dir = conformance_dir().join("promql");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "test"))
            .collect(),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PromQL test scripts not found in {}: {e}", dir.display());
            }
            eprintln!(
                "skipping: PromQL test scripts not found in {} ({e}); set LOOKOUT_CONFORMANCE_DIR",
                dir.display()
            );
            return;
        }
    };
    files.sort();
    assert!(!files.is_empty(), "no *.test files in {}", dir.display());
    let verbose = std::env::var_os("LOOKOUT_CONFORMANCE_VERBOSE").is_some();
    let only = std::env::var("LOOKOUT_CONFORMANCE_ONLY").ok();
    let mut total = promqltest::Counts::default();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let c = promqltest::run_file(f, verbose);
        println!(
            "{name:<28} {:>4} passed {:>4} failed {:>4} skipped",
            c.passed, c.failed, c.skipped
        );
        total += c;
    }
    let threshold: usize = include_str!("conformance-threshold.txt")
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .and_then(|l| l.trim().parse().ok())
        .expect("conformance-threshold.txt holds a number");
    let run = total.passed + total.failed;
    println!(
        "pass rate of the evals that need no native histograms: {:.2}%",
        100.0 * total.passed as f64 / run.max(1) as f64
    );
    println!(
        "promql conformance: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    if only.is_none() {
        assert!(
            total.passed >= threshold,
            "{} evals passed, fewer than the committed threshold {threshold}",
            total.passed
        );
    }
}
