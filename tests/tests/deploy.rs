//! The shipped deployment files: the agent's systemd unit passes
//! `systemd-analyze verify` and keeps the properties the agent relies on.

use std::path::PathBuf;
use std::process::Command;

use lookout_tests::{have_program, require};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `systemd-analyze verify` exits 0 even for broken units; its complaints
/// go to stderr, one per line, naming the file.
fn verify(unit_text: &str, name: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    // The binary must exist for verify; point ExecStart at one that does.
    std::fs::write(
        &path,
        unit_text.replace("/usr/local/bin/lookout-agent", "/bin/true"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(name))
        .map(str::to_string)
        .collect()
}

#[test]
fn agent_unit_passes_systemd_analyze_verify() {
    if !require(
        "systemd-analyze (Debian package systemd)",
        have_program("systemd-analyze"),
    ) {
        return;
    }
    let unit =
        std::fs::read_to_string(repo().join("deploy/systemd/lookout-agent.service")).unwrap();
    let complaints = verify(&unit, "lookout-agent.service");
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify:\n{}",
        complaints.join("\n")
    );
    // The check can fail: a typo is reported.
    let broken = unit.replace("ProtectSystem=strict", "ProtectSystem=strictly");
    assert!(!verify(&broken, "lookout-agent.service").is_empty());
}

#[test]
fn agent_unit_keeps_what_the_agent_relies_on() {
    let unit =
        std::fs::read_to_string(repo().join("deploy/systemd/lookout-agent.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectControlGroups=yes",
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ] {
        assert!(has(line), "the unit lost {line:?}");
    }
    let watchdog = unit
        .lines()
        .find_map(|l| l.strip_prefix("WatchdogSec="))
        .expect("WatchdogSec");
    assert!(
        humantime_secs(watchdog) >= 10,
        "a watchdog shorter than 10s risks restarts under load"
    );
    assert!(
        !has("ProtectClock=yes"),
        "ProtectClock forbids the read-only adjtimex the timex series need"
    );
}

fn humantime_secs(s: &str) -> u64 {
    s.trim().trim_end_matches('s').parse().unwrap_or(0)
}
