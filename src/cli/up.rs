//! `sagedock up`: the SageMaker control plane and runtime API, S3 over the S3 root, STS
//! and CloudWatch Logs, on one port; and the environment lines that point unmodified
//! clients and the SageMaker Python SDK at it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::process::{finish, listen_and_connect, shutdown_signal};
use super::UpArgs;
use crate::artifact::Cache;
use crate::control::{ControlPlane, Options, Settings};
use crate::credentials::{Credentials, DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY};
use crate::dashboard::Dashboard;
use crate::deploy::DeployOptions;
use crate::error::{Error, Result};
use crate::logs::{self, LogRecord};
use crate::runtime::owner;
use crate::server::{self, App, Services, S3};
use crate::storage::api::S3Api;
use crate::storage::Storage;

/// Where `up` keeps its state unless told otherwise.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("sagedock"))
        .unwrap_or_else(|| PathBuf::from(".sagedock"))
}

/// Where `s3://` locations are, as the flags say: the S3-compatible server, or the S3
/// root (by default `s3` in the data directory, made if missing).
fn storage(args: &UpArgs, data_dir: &Path) -> Result<Storage> {
    if let Some(endpoint) = &args.s3_endpoint {
        return Ok(Storage::remote(endpoint.as_str()));
    }
    let root = args.s3_root.clone().unwrap_or_else(|| data_dir.join("s3"));
    if args.s3_root.is_none() {
        std::fs::create_dir_all(&root).map_err(|source| Error::Write {
            path: root.clone(),
            source,
        })?;
    }
    Ok(Storage::root(&root)?)
}

/// The SageMaker Python SDK's configuration file `up` writes (named by
/// SAGEMAKER_USER_CONFIG_OVERRIDE): the default bucket, so that `Session.default_bucket()`
/// never asks STS (the SDK sends that to AWS's own STS address whatever the endpoint
/// variables say), and telemetry off (it reports to an AWS address of its own).
fn write_sdk_config(data_dir: &Path, bucket: &str) -> Result<PathBuf> {
    let path = data_dir.join("sagemaker-config.yaml");
    let text = format!(
        "# Written by `sagedock up` at each start; SAGEMAKER_USER_CONFIG_OVERRIDE names it.\n\
         SchemaVersion: '1.0'\n\
         SageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n      Session:\n        DefaultS3Bucket: {bucket}\n"
    );
    let temporary = path.with_extension("yaml.tmp");
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

pub async fn up(args: &UpArgs) -> Result<ExitCode> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|source| Error::Write {
        path: data_dir.clone(),
        source,
    })?;
    let data_dir = data_dir.canonicalize().map_err(|source| Error::Read {
        path: data_dir.clone(),
        source,
    })?;
    let lock = owner::claim(&data_dir)?;
    let (listener, engine) =
        listen_and_connect(&args.bind, args.port, args.engine.swarm_registry()).await?;
    let local = listener.local_addr()?;
    let settings = Settings {
        region: args.region.clone(),
        account: args.account.clone(),
    };
    let options = Options {
        health_timeout: args.health_timeout,
        model_load_wait: args.model_load_wait,
        deploy: DeployOptions {
            pull: args.pull,
            cpu_only: args.cpu_only,
            capacity: args.capacity.capacity(engine.memory_bytes),
            health_check_interval: args.health_check_interval,
            serverless_idle: args.serverless_idle,
            images: std::sync::Arc::new(match &args.image_map {
                Some(path) => crate::runtime::ImageMap::load(path)
                    .map_err(|e| Error::Argument(e.to_string()))?,
                None => crate::runtime::ImageMap::default(),
            }),
            // A server: its deployments go on in the background, told in its log.
            meter: None,
        },
    };
    let storage = storage(args, &data_dir)?;
    let s3 = match &storage {
        Storage::Root(root) => S3::Served(S3Api::new(root, Credentials::from_env())?),
        Storage::Remote(endpoint) => S3::Elsewhere(endpoint.clone()),
        Storage::None => S3::None,
    };
    let record =
        std::sync::Arc::new(LogRecord::open(&data_dir.join("logs")).map_err(|source| {
            Error::Write {
                path: data_dir.join("logs"),
                source,
            }
        })?);
    logs::collect::start(engine.clone(), lock.owner.clone(), record.clone());
    let sdk_config = write_sdk_config(
        &data_dir,
        &format!("sagemaker-{}-{}", args.region, args.account),
    )?;
    let banner = Banner {
        url: format!("http://{local}"),
        data_dir: &data_dir,
        storage: &storage,
        region: &args.region,
        sdk_config: &sdk_config,
        swarm: engine
            .cluster
            .as_ref()
            .map(|c| (engine.host.clone(), c.registry.clone())),
    };
    let cache = Cache::from_env()?;
    let (control, router) = ControlPlane::open(
        settings,
        &data_dir,
        lock.owner.clone(),
        engine.clone(),
        cache.clone(),
        storage.clone(),
        record.clone(),
        options,
    )?;
    control.restore().await?;
    let dashboard = Dashboard::new(
        engine,
        lock.owner.clone(),
        router.clone(),
        control.clone(),
        storage.clone(),
        cache,
    );
    let services = Services {
        s3,
        logs: Some(record),
        dashboard: Some(dashboard),
    };
    let app = App::with_services(router, Some(control.clone()), services);
    banner.print()?;
    let server = tokio::spawn(server::serve(listener, app, server::Limits::default()));
    shutdown_signal().await;
    server.abort();
    eprintln!("stopping: removing this run's containers (endpoints stay in {}; the next `sagedock up` redeploys them)", data_dir.display());
    finish(control.shutdown()).await;
    drop(lock);
    Ok(ExitCode::SUCCESS)
}

/// What `up` prints once it listens.
struct Banner<'a> {
    /// The swarm's manager and registry, when instances run there.
    swarm: Option<(String, String)>,
    url: String,
    data_dir: &'a Path,
    storage: &'a Storage,
    region: &'a str,
    sdk_config: &'a Path,
}

impl Banner<'_> {
    fn print(&self) -> Result<()> {
        let url = &self.url;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {url}")?;
        writeln!(out, "  the dashboard: {url}/ in a browser")?;
        if let Some((manager, registry)) = &self.swarm {
            writeln!(
                out,
                "  instances run as services of the swarm managed at {manager}, images from the registry {registry}"
            )?;
        }
        let s3 = match self.storage {
            Storage::Root(root) => format!("S3 (s3://BUCKET/KEY is {}/BUCKET/KEY)", root.display()),
            Storage::Remote(endpoint) => format!("S3 on {endpoint}"),
            Storage::None => "no S3".to_string(),
        };
        writeln!(
            out,
            "  SageMaker, sagemaker-runtime, {s3}, STS and CloudWatch Logs on one port; state in {}",
            self.data_dir.display()
        )?;
        writeln!(
            out,
            "  to point unmodified AWS clients and the SageMaker Python SDK at it, paste:"
        )?;
        let mut line = format!(
            "    export AWS_ENDPOINT_URL={url} AWS_ACCESS_KEY_ID={DEFAULT_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={DEFAULT_SECRET_KEY} AWS_DEFAULT_REGION={}",
            self.region
        );
        if let Storage::Remote(endpoint) = self.storage {
            line.push_str(&format!(" AWS_ENDPOINT_URL_S3={endpoint}"));
        }
        writeln!(out, "{line}")?;
        writeln!(
            out,
            "    export SAGEMAKER_USER_CONFIG_OVERRIDE={}",
            self.sdk_config.display()
        )?;
        writeln!(out, "Ctrl-C stops it.")?;
        out.flush()?;
        Ok(())
    }
}
