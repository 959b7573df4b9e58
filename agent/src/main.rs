//! `lookout-agent`: samples this node and serves `/metrics`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lookout_agent::cli::{self, LogFormat};
use lookout_agent::config::Config;
use lookout_agent::service::{self, Agent, RunOptions};
use lookout_protocol::exposition::Format;

/// Samples this node (host, containers through cgroups, the Docker daemon,
/// kubelet and kube-proxy health) and serves the results as Prometheus
/// metrics.
#[derive(Parser, Debug)]
#[command(name = "lookout-agent", version, about, long_about = None)]
struct Args {
    /// Config file (YAML). Default: /etc/lookout/agent.yaml if it exists,
    /// else built-in defaults.
    #[arg(short, long, env = "LOOKOUT_AGENT_CONFIG")]
    config: Option<PathBuf>,

    /// Address for /metrics, overriding the config's `listen`.
    #[arg(long, env = "LOOKOUT_AGENT_LISTEN")]
    listen: Option<String>,

    /// Run every sampler once, print the result in exposition format and exit.
    #[arg(long)]
    once: bool,

    /// With --once: print OpenMetrics instead of the Prometheus text format.
    #[arg(long, requires = "once")]
    openmetrics: bool,

    /// Validate the config and exit (0 if valid).
    #[arg(long)]
    check_config: bool,

    /// Print the default config as YAML and exit.
    #[arg(long)]
    print_default_config: bool,

    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, default_value = "info", env = "LOOKOUT_LOG_LEVEL")]
    log_level: String,

    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_default_config {
        print!("{}", Config::default_yaml());
        return ExitCode::SUCCESS;
    }
    cli::init_logging(&args.log_level, args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lookout-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let (mut cfg, path) = cli::load_config(args.config.as_deref())?;
    if let Some(listen) = &args.listen {
        cfg.listen = listen.clone();
        let errors = cfg.validate();
        if let Some(e) = errors.into_iter().find(|e| e.field == "listen") {
            anyhow::bail!("--listen: {}", e.message);
        }
    }
    if args.check_config {
        println!(
            "{}: valid; monitoring {}",
            path.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults".into()),
            service::describe(&cfg)
        );
        return Ok(());
    }
    cli::raise_fd_limit();
    let rt = cli::runtime()?;
    let agent = Agent::new(lookout_agent::clock::system());
    if args.once {
        let format = if args.openmetrics {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        };
        let text = rt.block_on(agent.sample_once(&cfg, format))?;
        print!("{text}");
        return Ok(());
    }
    rt.block_on(service::run(
        agent,
        RunOptions {
            push_override: None,
            config_path: path,
            initial: cfg,
            listen_override: args.listen,
            role: "lookout-agent",
        },
    ))
}
