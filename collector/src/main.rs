//! `lookout`: the collector. Today it offers `lookout up`, which runs the
//! whole system on one machine; the collector's ingest, storage, query and
//! alerting arrive as their own subcommands and modules.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lookout_agent::cli::{self, LogFormat};
use lookout_agent::service::{self, Agent, RunOptions};

#[derive(Parser, Debug)]
#[command(
    name = "lookout",
    version,
    about = "Monitoring and alerting for Docker and Kubernetes clusters."
)]
struct Args {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, global = true, default_value = "info", env = "LOOKOUT_LOG_LEVEL")]
    log_level: String,

    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run everything on this machine: an embedded agent sampling this
    /// host, its containers and its Docker daemon, served as /metrics.
    Up {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:9779", env = "LOOKOUT_LISTEN")]
        listen: String,

        /// Agent config (YAML) for the embedded agent; defaults otherwise.
        #[arg(long, env = "LOOKOUT_AGENT_CONFIG")]
        agent_config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging(&args.log_level, args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lookout: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Up {
            listen,
            agent_config,
        } => {
            let (cfg, path) = match agent_config {
                Some(p) => cli::load_config(Some(&p))?,
                None => (lookout_agent::config::Config::default(), None),
            };
            cli::raise_fd_limit();
            let rt = cli::runtime()?;
            let agent = Agent::new(lookout_agent::clock::system());
            rt.block_on(service::run(
                agent,
                RunOptions {
                    config_path: path,
                    initial: cfg,
                    listen_override: Some(listen),
                    role: "lookout up (embedded agent)",
                },
            ))
        }
    }
}
