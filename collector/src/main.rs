//! `lookout`: the collector, and `lookout up`, the whole system on one
//! machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lookout::config::Config;
use lookout::serve::{self, Collector};
use lookout_agent::cli::{self, LogFormat};
use lookout_agent::config::EndpointConfig;
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
    /// Run everything on this machine: the collector with embedded storage,
    /// and an embedded agent sampling this host, its containers and its
    /// Docker daemon, pushing to the collector.
    Up {
        /// Address of the collector (API, remote-write ingest, /metrics).
        #[arg(long, default_value = "127.0.0.1:9780", env = "LOOKOUT_LISTEN")]
        listen: String,

        /// Address of the embedded agent's own /metrics.
        #[arg(long, default_value = "127.0.0.1:9779", env = "LOOKOUT_AGENT_LISTEN")]
        agent_listen: String,

        /// Directory for the collector's storage and the agent's outbox.
        #[arg(long, default_value = "lookout-data", env = "LOOKOUT_DATA")]
        data: PathBuf,

        /// Agent config (YAML) for the embedded agent; defaults otherwise.
        #[arg(long, env = "LOOKOUT_AGENT_CONFIG")]
        agent_config: Option<PathBuf>,

        /// Collector config (lookout.yaml) for receivers and rules;
        /// defaults otherwise. --listen and --data override it.
        #[arg(long, short, env = "LOOKOUT_CONFIG")]
        config: Option<PathBuf>,

        /// Rule files (globs) to evaluate when the config names none; the
        /// shipped packs when run from the source tree.
        #[arg(long, default_value = "rules/*.yaml", env = "LOOKOUT_RULES")]
        rules: String,
    },
    /// Run the collector.
    Serve {
        /// Config file (lookout.yaml); built-in defaults when absent.
        #[arg(long, short, env = "LOOKOUT_CONFIG")]
        config: Option<PathBuf>,

        /// Overrides `listen` from the config.
        #[arg(long)]
        listen: Option<String>,

        /// Overrides `storage.path` from the config.
        #[arg(long)]
        storage_path: Option<PathBuf>,
    },
    /// Run a PromQL expression against a running collector and print the
    /// answer: an instant query, or a range query with --start.
    Query {
        /// The expression, e.g. 'sum by (job) (up)'.
        expr: String,

        /// The collector's HTTP address.
        #[arg(long, default_value = "http://127.0.0.1:9780", env = "LOOKOUT_URL")]
        url: String,

        /// Evaluation time of an instant query (Unix seconds or RFC 3339);
        /// now when absent.
        #[arg(long, conflicts_with = "start")]
        time: Option<String>,

        /// Start of a range query (Unix seconds or RFC 3339).
        #[arg(long)]
        start: Option<String>,

        /// End of a range query; now when absent.
        #[arg(long, requires = "start")]
        end: Option<String>,

        /// Step of a range query (e.g. 30s, 1m or seconds).
        #[arg(long, requires = "start", default_value = "1m")]
        step: String,

        /// Print the API's JSON answer instead of text.
        #[arg(long)]
        json: bool,

        /// Give up after this long.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Add, list or expire silences on a running collector.
    #[command(subcommand)]
    Silence(SilenceCommand),
    /// Check or unit-test rule files in Prometheus's format.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Check a collector config file and exit (0 when valid).
    CheckConfig { file: PathBuf },
    /// Print the default collector config (annotated YAML).
    PrintDefaultConfig,
}

#[derive(Subcommand, Debug)]
enum SilenceCommand {
    /// Silence alerts matching every matcher (`alertname=NodeDown`,
    /// `node=~"n[12]"`, `severity!=info`) for a while; prints the id.
    Add {
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long the silence lasts.
        #[arg(long, short, default_value = "1h", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Why; shown to everyone who lists silences.
        #[arg(long, short, default_value = "")]
        comment: String,
        /// Who; defaults to $USER.
        #[arg(long, env = "USER", default_value = "lookout")]
        author: String,
        #[arg(long, default_value = "http://127.0.0.1:9780", env = "LOOKOUT_URL")]
        url: String,
    },
    /// List active and pending silences (and expired ones with --all).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = "http://127.0.0.1:9780", env = "LOOKOUT_URL")]
        url: String,
    },
    /// End silences now.
    Expire {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long, default_value = "http://127.0.0.1:9780", env = "LOOKOUT_URL")]
        url: String,
    },
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Check rule files (like `promtool check rules`): YAML, expressions,
    /// templates, names; exit 1 on any error.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Fail on lints (repeated rules) too.
        #[arg(long)]
        lint_fatal: bool,
    },
    /// Run rule unit tests in `promtool test rules` format; exit 1 when
    /// any fails.
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Queries allocate many short-lived vectors and label sets; mimalloc
/// serves them several times faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (its enum index in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Return freed pages to the system at once rather than after a delay:
    // the initial list of a large cluster, or a big query, leaves tens of
    // megabytes the process would otherwise keep as its RSS.
    // SAFETY: sets a process-wide allocator option; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
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
            agent_listen,
            data,
            agent_config,
            config,
            rules,
        } => up(listen, agent_listen, data, agent_config, config, rules),
        Command::Serve {
            config,
            listen,
            storage_path,
        } => {
            let mut cfg = match &config {
                Some(p) => Config::load(p)?,
                None => Config::default(),
            };
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(p) = storage_path {
                cfg.storage.path = p;
            }
            cfg.ensure_valid("settings")?;
            cli::raise_fd_limit();
            multi_thread_runtime()?.block_on(serve::run(cfg, config))
        }
        Command::Query {
            expr,
            url,
            time,
            start,
            end,
            step,
            json,
            timeout,
        } => {
            let req = lookout::query_cli::QueryRequest {
                url,
                expr,
                time,
                step: start.as_ref().map(|_| step),
                start,
                end,
                timeout,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let answer = rt.block_on(lookout::query_cli::fetch(&req))?;
            if json {
                println!("{answer}");
            } else {
                print!("{}", lookout::query_cli::render(&answer));
            }
            Ok(())
        }
        Command::Silence(cmd) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let timeout = Duration::from_secs(30);
            rt.block_on(async move {
                match cmd {
                    SilenceCommand::Add {
                        matchers,
                        duration,
                        comment,
                        author,
                        url,
                    } => {
                        let id = lookout::silence_cli::add(
                            &url, &matchers, duration, &author, &comment, timeout,
                        )
                        .await?;
                        println!("{id}");
                    }
                    SilenceCommand::List { all, url } => {
                        print!("{}", lookout::silence_cli::list(&url, all, timeout).await?);
                    }
                    SilenceCommand::Expire { ids, url } => {
                        for id in ids {
                            lookout::silence_cli::expire(&url, &id, timeout).await?;
                            println!("expired {id}");
                        }
                    }
                }
                Ok(())
            })
        }
        Command::Rules(cmd) => {
            let mut out = std::io::stdout().lock();
            let ok = match cmd {
                RulesCommand::Check { files, lint_fatal } => {
                    lookout::rules_cli::check(&files, lint_fatal, &mut out)?
                }
                RulesCommand::Test { files } => lookout::rules_cli::test(&files, &mut out)?,
            };
            if ok {
                Ok(())
            } else {
                anyhow::bail!("some rule files failed")
            }
        }
        Command::CheckConfig { file } => {
            Config::load(&file)?;
            println!("{}: valid", file.display());
            Ok(())
        }
        Command::PrintDefaultConfig => {
            print!("{}", Config::default_yaml());
            Ok(())
        }
    }
}

fn multi_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lookout")
        .build()
        .context("cannot start the async runtime")
}

fn up(
    listen: String,
    agent_listen: String,
    data: PathBuf,
    agent_config: Option<PathBuf>,
    config: Option<PathBuf>,
    rules: String,
) -> anyhow::Result<()> {
    let (agent_cfg, agent_path) = match agent_config {
        Some(p) => cli::load_config(Some(&p))?,
        None => (lookout_agent::config::Config::default(), None),
    };
    let mut cfg = match &config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    cfg.listen = listen;
    cfg.storage.path = data.join("storage");
    if cfg.rules.files.is_empty() {
        cfg.rules.files.push(rules);
    }
    cfg.ensure_valid("settings")?;
    cli::raise_fd_limit();
    let rt = multi_thread_runtime()?;
    rt.block_on(async move {
        let collector = Collector::start(cfg, lookout_agent::clock::system()).await?;
        tracing::info!(
            "lookout up {}: collector on http://{} (query API, remote write), storage at {}",
            env!("CARGO_PKG_VERSION"),
            collector.addr,
            data.join("storage").display()
        );
        let endpoint = EndpointConfig {
            name: "collector".into(),
            url: format!("http://{}/api/v1/write", collector.addr),
            bearer_token_file: None,
            timeout: Duration::from_secs(10),
        };
        let agent = Agent::new(lookout_agent::clock::system());
        let result = service::run(
            agent,
            RunOptions {
                config_path: agent_path,
                initial: agent_cfg,
                listen_override: Some(agent_listen),
                push_override: Some((endpoint, data.join("agent-outbox"))),
                role: "lookout up (embedded agent)",
            },
        )
        .await;
        collector.stop().await;
        result
    })
}
