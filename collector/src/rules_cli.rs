//! `lookout rules check` and `lookout rules test`: the collector's answer
//! to `promtool check rules` and `promtool test rules`, on the same files.

use std::io::Write;
use std::path::PathBuf;

use lookout_rules::unittest;

/// Checks rule files; prints a summary per file and every problem.
/// Returns whether all files are valid (lints fail only when `lint_fatal`).
pub fn check(files: &[PathBuf], lint_fatal: bool, out: &mut dyn Write) -> std::io::Result<bool> {
    let mut ok = true;
    for f in files {
        match lookout_rules::load_file(f) {
            Ok((groups, lints)) => {
                let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
                writeln!(
                    out,
                    "{}: SUCCESS: {rules} rules in {} groups",
                    f.display(),
                    groups.len()
                )?;
                for l in &lints {
                    writeln!(out, "  lint: group {:?}: {}", l.group, l.message)?;
                }
                if lint_fatal && !lints.is_empty() {
                    ok = false;
                }
            }
            Err(errors) => {
                ok = false;
                writeln!(out, "{}: FAILED:", f.display())?;
                for e in &errors.0 {
                    writeln!(out, "  {e}")?;
                }
            }
        }
    }
    Ok(ok)
}

/// Runs rule unit-test files; prints each file's outcome and its failures.
pub fn test(files: &[PathBuf], out: &mut dyn Write) -> std::io::Result<bool> {
    let mut ok = true;
    for f in files {
        let report = unittest::run_file(f);
        if let Some(e) = &report.error {
            ok = false;
            writeln!(out, "{}: FAILED: {e}", f.display())?;
            continue;
        }
        if report.passed() {
            writeln!(
                out,
                "{}: SUCCESS: {} test groups",
                f.display(),
                report.groups
            )?;
        } else {
            ok = false;
            writeln!(
                out,
                "{}: FAILED: {} of {} test groups",
                f.display(),
                report.failed_groups,
                report.groups
            )?;
            for fail in &report.failures {
                writeln!(out, "  {fail}")?;
            }
        }
    }
    Ok(ok)
}
