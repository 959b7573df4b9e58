//! Prometheus rule files for Lookout.
//!
//! - [`file`]: loading and checking rule files, with errors that name the
//!   file, line, group and rule;
//! - [`eval`]: evaluating a group at an instant, the alert lifecycle
//!   (inactive, pending, firing, resolved), `ALERTS` and
//!   `ALERTS_FOR_STATE` written back through the append path;
//! - [`unittest`]: `promtool test rules` files, run over [`memstore`].
//!
//! Time is always passed in: evaluation reads no clock, so tests and the
//! unit-test runner step through hours of data at once.

pub mod eval;
pub mod file;
pub mod memstore;
pub mod unittest;

pub use eval::{
    ActiveAlert, AlertState, EvalContext, GroupOutcome, GroupState, OutgoingAlert, Sink,
};
pub use file::{Lint, Rule, RuleError, RuleErrors, RuleGroup, RuleKind, load_file, load_files};
