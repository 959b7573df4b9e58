//! Process set-up shared by `lookout-agent` and `lookout up`: logging, the
//! runtime, resource limits, and loading the config a command line names.

use std::path::{Path, PathBuf};

use std::io::IsTerminal;

use anyhow::Context;

use crate::config::{Config, DEFAULT_CONFIG_PATH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// kube's client logs every failed request itself, again on each retry;
/// the watches report the same errors once, with what was being watched.
/// `RUST_LOG` can still turn it on.
const QUIET_BY_DEFAULT: &str = "kube_client=off";

/// Logs go to stderr (the journal under systemd). `RUST_LOG` overrides
/// `level` with per-module filters.
pub fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(format!("{QUIET_BY_DEFAULT},{level}")))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A small runtime: one scheduler thread is plenty for the agent's I/O, and
/// blocking reads get a bounded pool so a hung filesystem cannot grow it
/// without limit.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(16)
        .thread_keep_alive(std::time::Duration::from_secs(60))
        .thread_name("lookout-blocking")
        .build()
}

/// Kept cgroup file descriptors need more than the default soft limit of
/// 1024 on a node with a hundred containers: raise it to the hard limit.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid in/out pointer for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Loads the config the command line names, or the default file if it
/// exists, or the built-in defaults. Returns the path to reload on SIGHUP.
pub fn load_config(explicit: Option<&Path>) -> anyhow::Result<(Config, Option<PathBuf>)> {
    match explicit {
        Some(path) => {
            let cfg = Config::load(path).with_context(|| "the agent's config is not usable")?;
            Ok((cfg, Some(path.to_path_buf())))
        }
        None => {
            let default = Path::new(DEFAULT_CONFIG_PATH);
            if default.exists() {
                let cfg =
                    Config::load(default).with_context(|| "the agent's config is not usable")?;
                Ok((cfg, Some(default.to_path_buf())))
            } else {
                Ok((Config::default(), None))
            }
        }
    }
}
