//! `sagedock up`: the SageMaker control plane and runtime API on one port.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::process::{finish, listen_and_connect, shutdown_signal};
use super::UpArgs;
use crate::artifact::Cache;
use crate::control::{ControlPlane, Options, Settings};
use crate::deploy::DeployOptions;
use crate::error::{Error, Result};
use crate::runtime::owner;
use crate::server::{self, App};
use crate::storage::Storage;

/// Where `up` keeps its state unless told otherwise.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("sagedock"))
        .unwrap_or_else(|| PathBuf::from(".sagedock"))
}

/// Where `s3://` locations are, as the flags say.
pub fn storage(s3_root: Option<&Path>, s3_endpoint: Option<&str>) -> Result<Storage> {
    Ok(match (s3_root, s3_endpoint) {
        (Some(root), _) => Storage::root(root)?,
        (None, Some(endpoint)) => Storage::remote(endpoint),
        (None, None) => Storage::None,
    })
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
    let (listener, engine) = listen_and_connect(&args.bind, args.port).await?;
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
        },
    };
    let (control, router) = ControlPlane::open(
        settings,
        &data_dir,
        lock.owner.clone(),
        engine,
        Cache::from_env()?,
        storage(args.s3_root.as_deref(), args.s3_endpoint.as_deref())?,
        options,
    )?;
    control.restore().await?;
    let app = App::new(router, Some(control.clone()));
    print_banner(local, &data_dir)?;
    let server = tokio::spawn(server::serve(listener, app, server::Limits::default()));
    shutdown_signal().await;
    server.abort();
    eprintln!("stopping: removing this run's containers (endpoints stay in {}; the next `sagedock up` redeploys them)", data_dir.display());
    finish(control.shutdown()).await;
    drop(lock);
    Ok(ExitCode::SUCCESS)
}

fn print_banner(local: std::net::SocketAddr, data_dir: &Path) -> Result<()> {
    let url = format!("http://{local}");
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {url}")?;
    writeln!(
        out,
        "  SageMaker API and sagemaker-runtime on one port; state in {}",
        data_dir.display()
    )?;
    writeln!(out, "  to point unmodified AWS clients at it:")?;
    writeln!(out, "    export AWS_ENDPOINT_URL_SAGEMAKER={url}")?;
    writeln!(out, "    export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={url}")?;
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        writeln!(
            out,
            "    export AWS_ACCESS_KEY_ID=sagedock AWS_SECRET_ACCESS_KEY=sagedock"
        )?;
    }
    if std::env::var_os("AWS_DEFAULT_REGION").is_none() && std::env::var_os("AWS_REGION").is_none()
    {
        writeln!(out, "    export AWS_DEFAULT_REGION=us-east-1")?;
    }
    writeln!(out, "Ctrl-C stops it.")?;
    out.flush()?;
    Ok(())
}
