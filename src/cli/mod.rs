//! Command-line interface: argument definitions (clap derive) and dispatch.
//!
//! Every command that prints results takes `--json` for machine-readable output on
//! stdout; human text goes to stdout, diagnostics and logs (`RUST_LOG`) to stderr.

mod artifact;
mod bench;
mod check;
mod ci;
mod containers;
mod demo;
mod process;
mod progress;
mod report_file;
mod serve;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::artifact::Limits;
use crate::deploy::Capacity;
use crate::error::{Error, Result};
use crate::framework::inspect::Choice;
use crate::framework::Framework;

/// Run Amazon SageMaker hosting on one machine.
///
/// sagedock takes what a SageMaker deployment takes (a model.tar.gz, a serving image,
/// the hosting API calls) and runs it locally with real containers, so mistakes show up
/// in seconds instead of after a 10-minute cloud round trip.
#[derive(Debug, Parser)]
#[command(name = "sagedock", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// No progress lines on the terminal (they are never drawn when stderr is not one).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack a model directory into a deterministic model.tar.gz.
    ///
    /// The directory's contents become /opt/ml/model. Entries are sorted, owners, times
    /// and modes normalised, so the same directory always gives the same bytes.
    Pack(PackArgs),
    /// Unpack a model.tar.gz safely into DEST, which then holds exactly /opt/ml/model.
    ///
    /// Refuses entries that would escape DEST (absolute paths, '..', links that lead
    /// outside, writes through links), device nodes and FIFOs, and archives over the
    /// limits. Atomic: on any failure DEST does not exist.
    Unpack(UnpackArgs),
    /// Check a model artifact (a .tar.gz or a directory) against its serving stack.
    ///
    /// Detects the framework from the layout and prints findings (error, warning, info),
    /// each with the path concerned and a fix. Exit status: 0 no errors, 1 errors found,
    /// 2 the command could not run.
    Validate(ValidateArgs),
    /// List or prune the cache of unpacked artifacts.
    ///
    /// The cache lives in $SAGEDOCK_CACHE_DIR, else the user cache directory
    /// (~/.cache/sagedock on Linux); entries are keyed by the archive's sha256.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Serve a model with a serving image, as a SageMaker endpoint would.
    ///
    /// Unpacks the artifact (through the cache), starts the containers with the SageMaker
    /// container contract (`serve`, /opt/ml/model read-only, port 8080, instance-type
    /// limits), waits until each answers GET /ping, then forwards requests from --port and
    /// streams the containers' logs. Ctrl-C or SIGTERM stops and removes every container.
    Serve(ServeArgs),
    /// List the containers sagedock manages.
    Ps(PsArgs),
    /// Show the logs of a managed container, or of every container of an endpoint.
    Logs(LogsArgs),
    /// Remove containers left behind by sagedock runs that are gone.
    Gc(GcArgs),
    /// Run the SageMaker control plane and runtime API on one port (for boto3, the AWS
    /// CLI, the SageMaker SDK), backed by real containers.
    ///
    /// CreateModel / CreateEndpointConfig / CreateEndpoint deploy containers; DescribeEndpoint
    /// reports Creating, InService or Failed with a reason; InvokeEndpoint reaches them.
    /// State persists in --data-dir; runs in the foreground until Ctrl-C or SIGTERM.
    Up(UpArgs),
    /// The whole job end to end on a bundled fixture: pack a model, deploy it through the
    /// SageMaker API as boto3 would, invoke it, report latency, clean up.
    ///
    /// Needs a Docker engine; builds its serving image (sagedock/tensorflow, or the echo
    /// test image with --echo) on first use.
    Demo(DemoArgs),
    /// Load an endpoint with InvokeEndpoint calls and report honest latency percentiles.
    ///
    /// Closed loop by default (each of --concurrency connections sends its next request when
    /// the last is answered); with --rate, open loop: requests fall due at a fixed rate and
    /// a request that waited for a free connection is timed from when it fell due, so
    /// stalls show in the percentiles. The target is an endpoint of a running `sagedock
    /// up` or `sagedock serve` (--endpoint), or any URL (--url, e.g. a container's own
    /// /invocations for a baseline). Exit status: 0 every request answered 2xx, on
    /// schedule (open loop) and within the budgets; 1 otherwise; 2 the command could not
    /// run.
    Bench(BenchArgs),
    /// Check models before deploying them: stand up each endpoint of a spec file, validate
    /// its artifact, wait for a healthy start, check sample requests' answers and latency
    /// under load, tear it down; report every check, in JUnit XML with --junit.
    ///
    /// The spec is JSON (see README, `sagedock ci`). Exit status: 0 every check passed, 1 a
    /// check failed or could not run, 2 the spec or the machine stopped the run.
    Ci(CiArgs),
    /// Will this container pass SageMaker's rules? Run an image as SageMaker would and
    /// report each rule of the container contract as pass, warn or fail, with what was
    /// measured and how to fix it.
    ///
    /// The image's ENTRYPOINT, CMD, architecture and user; the start (first connection,
    /// first /ping 200, no route outside this machine, /opt/ml/model read-only); /ping at
    /// rest and under load (under 2 s); the sample request's answer, its cold and warm
    /// latency and load within the instance type's memory and CPU; the exit after SIGTERM;
    /// /execution-parameters. Exit status: 0 no rule failed, 1 a rule failed, 2 the check
    /// could not run.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The image to check (it must answer `serve`).
    pub image: String,
    /// A sample request's body, read from FILE (without one the invocation rules are
    /// skipped).
    #[arg(long, value_name = "FILE")]
    pub request: Option<PathBuf>,
    #[command(flatten)]
    pub request_headers: RequestArgs,
    /// The endpoint will run with EnableNetworkIsolation: a container that needs the
    /// network at start fails the check instead of warning.
    #[arg(long)]
    pub network_isolation: bool,
    /// How long /ping may take to turn 200 (SageMaker's default: 4 minutes).
    #[arg(long, default_value = "4m", value_parser = humantime::parse_duration)]
    pub health_timeout: std::time::Duration,
    /// How long after SIGTERM the container may take to exit (SageMaker: 30 s, then
    /// SIGKILL).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub stop_timeout: std::time::Duration,
    /// How long the sample request is sent under load.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub load_duration: std::time::Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the rules as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub container: ContainerArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub capacity: CapacityArgs,
}

#[derive(Debug, Args)]
pub struct CiArgs {
    /// The spec file (JSON); paths in it are relative to it.
    pub spec: PathBuf,
    /// Write the checks as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// The region in the containers' AWS_REGION.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub capacity: CapacityArgs,
}

/// How many instances this machine runs.
#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// Instances in all, over every endpoint (default: one per 256 MiB of the Docker
    /// engine's memory, at least 8).
    #[arg(long, value_name = "N")]
    pub max_instances: Option<u64>,
    /// Instances of one endpoint (default: --max-instances).
    #[arg(long, value_name = "N")]
    pub max_instances_per_endpoint: Option<u64>,
}

impl CapacityArgs {
    /// The caps for an engine with `memory_bytes`, as the flags adjust them.
    pub fn capacity(&self, memory_bytes: u64) -> Capacity {
        Capacity::for_memory(memory_bytes).with(self.max_instances_per_endpoint, self.max_instances)
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["endpoint", "url"])))]
#[command(group(clap::ArgGroup::new("payload").args(["body", "body_text", "bodies", "jsonl"])))]
pub struct BenchArgs {
    /// The endpoint to invoke (POST ENDPOINT_URL/endpoints/NAME/invocations).
    #[arg(long, value_name = "NAME")]
    pub endpoint: Option<String>,
    /// Where the sagemaker-runtime API answers.
    #[arg(
        long,
        value_name = "URL",
        env = "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
        default_value = "http://127.0.0.1:9474"
    )]
    pub endpoint_url: String,
    /// POST to this URL as it is instead (e.g. http://172.17.0.2:8080/invocations).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The request body, read from FILE.
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,
    /// The request body, given inline.
    #[arg(long, value_name = "TEXT")]
    pub body_text: Option<String>,
    /// Request bodies: every file in DIR, sent in turn (sorted by name), so that caches
    /// and shape-dependent latency show.
    #[arg(long, value_name = "DIR")]
    pub bodies: Option<PathBuf>,
    /// Request bodies: each line of FILE (JSON Lines), sent in turn.
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    #[command(flatten)]
    pub request: RequestArgs,
    /// X-Amzn-SageMaker-Target-Variant.
    #[arg(long, value_name = "VARIANT")]
    pub target_variant: Option<String>,
    /// X-Amzn-SageMaker-Target-Model (multi-model endpoints).
    #[arg(long, value_name = "KEY")]
    pub target_model: Option<String>,
    /// Keep-alive connections, i.e. requests in flight at most.
    #[arg(short = 'c', long, default_value_t = 1)]
    pub concurrency: usize,
    /// Open loop: this many requests per second, due at even intervals.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// How long to measure.
    #[arg(short = 'd', long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// Load sent first and not measured (connections, caches, lazy model loads).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: std::time::Duration,
    /// A request not answered within this counts as failed.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Fail (exit 1) when p50 latency exceeds this.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_p50: Option<std::time::Duration>,
    /// Fail (exit 1) when p99 latency exceeds this.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_p99: Option<std::time::Duration>,
    /// Print the report as JSON (schema: fixtures/bench/report.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Also write the report as one self-contained HTML page with plots to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Then send the same load straight to one of the endpoint's containers (the serving
    /// container of --target-variant's or the first variant's first instance), and report
    /// both: what sagedock and the endpoint add.
    #[arg(long, requires = "endpoint", conflicts_with_all = ["url", "target_model", "find_max"])]
    pub compare_direct: bool,
    /// Find the highest open-loop rate that meets --slo: a closed-loop probe, then steps
    /// of --duration each, up and bisected to within 5 %.
    #[arg(long, requires = "slo", conflicts_with = "rate")]
    pub find_max: bool,
    /// The latency objective --find-max keeps to, e.g. p99=50ms or p50=10ms,p99=50ms.
    #[arg(long, value_name = "OBJECTIVE", requires = "find_max")]
    pub slo: Option<crate::bench::Slo>,
}

/// The headers of the request `bench` and `check` send.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The request's Content-Type.
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
    /// The request's Accept.
    #[arg(long)]
    pub accept: Option<String>,
    /// The request's X-Amzn-SageMaker-Custom-Attributes.
    #[arg(long, value_name = "TEXT")]
    pub custom_attributes: Option<String>,
}

impl RequestArgs {
    /// The invocation these headers make (no variant or model targeted).
    pub fn invocation(&self) -> crate::bench::Invocation<'_> {
        crate::bench::Invocation {
            content_type: Some(&self.content_type),
            accept: self.accept.as_deref(),
            custom_attributes: self.custom_attributes.as_deref(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Invocations to time for the latency summary.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Serve with the 1.4 MB echo test image (it answers with the request) instead of
    /// sagedock/tensorflow (real TensorFlow computing the model's answer).
    #[arg(long)]
    pub echo: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The port for both APIs (0: any free port).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Where models, endpoint configs, endpoints and tags are kept (default: the user
    /// data directory, ~/.local/share/sagedock on Linux).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// S3 on the port keeps s3://BUCKET/KEY as the file DIR/BUCKET/KEY, and model data is
    /// read from there (default: the folder s3 in the data directory).
    #[arg(long, value_name = "DIR", conflicts_with = "s3_endpoint")]
    pub s3_root: Option<PathBuf>,
    /// s3://BUCKET/KEY model data is downloaded from this S3-compatible server (path-style
    /// requests, signed with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when set, else with a
    /// dummy key that local servers such as moto accept).
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The region in ARNs and in the containers' AWS_REGION.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The account id in ARNs and error messages.
    #[arg(long, default_value = "123456789012")]
    pub account: String,
    /// How long a container may take to answer GET /ping with 200 when the variant does
    /// not set ContainerStartupHealthCheckTimeoutInSeconds.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub health_timeout: std::time::Duration,
    /// Pull images the engine does not have.
    #[arg(long)]
    pub pull: bool,
    /// Run GPU and Inferentia instance types without their accelerators.
    #[arg(long)]
    pub cpu_only: bool,
    /// Multi-model endpoints: how long an InvokeEndpoint waits for its TargetModel to load
    /// before answering ModelNotReadyException (the load goes on). SageMaker waits 60 s.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub model_load_wait: std::time::Duration,
    /// How often instances in service are asked GET /ping; three failures in a row replace
    /// the instance, as a container that dies does at once.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub health_check_interval: std::time::Duration,
    /// Serverless variants: how long without a call before their instance is stopped
    /// (scaled to zero; the next call pays a cold start) unless ProvisionedConcurrency
    /// keeps it warm.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub serverless_idle: std::time::Duration,
    /// A JSON object of AWS image repositories (`tensorflow-training`, or with a tag,
    /// `sagemaker-xgboost:1.7-1`) and the local images that run for them, over the
    /// built-in map (README: "The image map").
    #[arg(long, value_name = "FILE")]
    pub image_map: Option<PathBuf>,
    #[command(flatten)]
    pub capacity: CapacityArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Where containers run: on the engine DOCKER_HOST names, or as services of the swarm it
/// manages.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// `swarm`: each instance runs as a service of the Docker Swarm whose manager DOCKER_HOST
    /// names, on any of its nodes (README: "More than one machine"). `docker`: containers
    /// on that engine itself.
    #[arg(long, value_enum, default_value_t = EngineKind::Docker, env = "SAGEDOCK_ENGINE")]
    pub engine: EngineKind,
    /// With --engine swarm: the registry (HOST:PORT) every node pulls from. Serving images
    /// are read from it as from ECR; model images are pushed to it.
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "SAGEDOCK_REGISTRY",
        required_if_eq("engine", "swarm")
    )]
    pub registry: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    Docker,
    Swarm,
}

impl EngineArgs {
    /// The registry when the containers run on a swarm.
    pub fn swarm_registry(&self) -> Option<&str> {
        match self.engine {
            EngineKind::Swarm => self.registry.as_deref(),
            EngineKind::Docker => None,
        }
    }

    pub async fn connect(&self) -> Result<crate::runtime::Engine, crate::runtime::RuntimeError> {
        crate::runtime::Engine::connect_to(self.swarm_registry()).await
    }
}

/// The port `sagedock serve` (and later `sagedock up`) listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9474;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The serving image (it must answer `serve`, see the SageMaker container contract).
    #[arg(long)]
    pub image: String,
    /// The endpoint name (used in container names and labels).
    #[arg(long, default_value = "local")]
    pub name: String,
    /// The production variant name.
    #[arg(long, default_value = "AllTraffic")]
    pub variant: String,
    /// How many containers to run.
    #[arg(long, default_value_t = 1)]
    pub instance_count: u32,
    /// The local port that forwards to the containers (0: any free port).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// How long each container may take to answer GET /ping with 200.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub health_timeout: std::time::Duration,
    /// How often the running containers are asked GET /ping; three failures in a row
    /// replace the instance, as a container that dies does at once.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub health_check_interval: std::time::Duration,
    /// EnableNetworkIsolation: the containers get no route outside this machine.
    #[arg(long)]
    pub network_isolation: bool,
    #[command(flatten)]
    pub container: ContainerArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub capacity: CapacityArgs,
}

/// How one image runs under `serve` and `check`.
#[derive(Debug, Args)]
pub struct ContainerArgs {
    /// The model: a model.tar.gz (unpacked through the cache) or a directory; mounted
    /// read-only at /opt/ml/model.
    #[arg(long, value_name = "ARTIFACT")]
    pub model: Option<PathBuf>,
    /// The instance type whose vCPUs and memory become container limits and whose CPU
    /// architecture the image must have (`local`: none).
    #[arg(long, default_value = "ml.m5.large")]
    pub instance_type: String,
    /// An environment variable for the containers, NAME=VALUE; repeatable.
    #[arg(long, short = 'e', value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Pull the image if the engine does not have it.
    #[arg(long)]
    pub pull: bool,
    /// Run GPU and Inferentia instance types without their accelerators.
    #[arg(long)]
    pub cpu_only: bool,
    /// The region containers see in AWS_REGION.
    #[arg(long, default_value = "us-east-1", env = "AWS_REGION")]
    pub region: String,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// An endpoint, training job or transform job of `sagedock up` (its CloudWatch log streams,
    /// containers that are gone included), or a running container's name or id prefix, or
    /// an endpoint of `serve`.
    pub name: String,
    /// The data directory of the `sagedock up` whose log record to read (default: up's).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Keep following new output.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Remove every sagedock container, including those of runs still alive.
    #[arg(long)]
    pub all: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The model directory; its contents become /opt/ml/model.
    pub dir: PathBuf,
    /// Where to write the archive.
    #[arg(short, long, value_name = "FILE", default_value = "model.tar.gz")]
    pub output: PathBuf,
    /// Leave out files and folders with this name or pattern (`*`, `?`); repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// gzip level, 0 (store) to 9 (smallest).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub level: u32,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Stop when the unpacked files exceed this many bytes (suffixes K, M, G, T).
    #[arg(long, value_name = "BYTES", default_value = "100G", value_parser = crate::units::parse_bytes)]
    pub max_unpacked_bytes: u64,
    /// Stop when the archive holds more entries than this.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT_MAX_ENTRIES)]
    pub max_entries: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_unpacked_bytes: self.max_unpacked_bytes,
            max_entries: self.max_entries,
        }
    }
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The model.tar.gz to unpack.
    pub archive: PathBuf,
    /// The directory to create (must not exist, or be empty).
    pub dest: PathBuf,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--framework`: `auto` (detect from the layout) or a framework's name.
fn parse_choice(value: &str) -> std::result::Result<Choice, String> {
    if value.eq_ignore_ascii_case("auto") {
        return Ok(Choice::Detect);
    }
    Framework::from_str(value, true)
        .map(Choice::Named)
        .map_err(|_| {
            let names: Vec<&str> = Framework::value_variants()
                .iter()
                .map(|f| f.name())
                .collect();
            format!("expected auto or one of: {}", names.join(", "))
        })
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A model.tar.gz (unpacked through the cache) or a model directory.
    pub artifact: PathBuf,
    /// The serving stack whose rules apply: auto (detected from the layout; its rules'
    /// errors are then said as warnings), tensorflow, mxnet, mms, pytorch, sklearn,
    /// xgboost or custom.
    #[arg(long, value_name = "STACK", default_value = "auto", value_parser = parse_choice)]
    pub framework: Choice,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List cached artifacts, most recently used first.
    Ls {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove cached artifacts: all of them, or those unused for a while.
    Prune {
        /// Remove every entry.
        #[arg(long, conflicts_with = "older_than")]
        all: bool,
        /// Remove entries last used longer ago than this (e.g. 7d, 12h, 30m).
        #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a parsed command line; the exit code reflects the outcome.
pub fn run(cli: Cli) -> Result<ExitCode> {
    progress::set_quiet(cli.quiet);
    match cli.command {
        Command::Pack(args) => artifact::pack(&args),
        Command::Unpack(args) => artifact::unpack(&args),
        Command::Validate(args) => artifact::validate(&args),
        Command::Cache(cmd) => artifact::cache(&cmd),
        Command::Serve(args) => block_on(serve::serve(&args)),
        Command::Ps(args) => block_on(containers::ps(&args)),
        Command::Logs(args) => block_on(containers::logs(&args)),
        Command::Gc(args) => block_on(containers::gc(&args)),
        Command::Up(args) => block_on(up::up(&args)),
        Command::Demo(args) => block_on(demo::demo(&args)),
        Command::Bench(args) => block_on(bench::bench(&args)),
        Command::Ci(args) => block_on(ci::ci(&args)),
        Command::Check(args) => block_on(check::check(&args)),
    }
}

/// Runs an async command on a multi-threaded runtime; before the runtime ends, the
/// container removals the command started are seen through (however it ended).
fn block_on<F: std::future::Future<Output = Result<ExitCode>>>(future: F) -> Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::AsyncRuntime)?
        .block_on(async {
            let outcome = future.await;
            process::finish(crate::runtime::removal::Removals::global().settled()).await;
            outcome
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn framework_choices_parse() {
        assert_eq!(parse_choice("auto"), Ok(Choice::Detect));
        assert_eq!(
            parse_choice("sklearn"),
            Ok(Choice::Named(Framework::Sklearn))
        );
        assert!(parse_choice("caffe").unwrap_err().contains("tensorflow"));
    }
}
