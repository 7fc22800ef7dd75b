//! `sagedock up`: the SageMaker control plane and runtime API on one port.

use std::io::Write;
use std::process::ExitCode;

use super::runtime::{listen_and_connect, shutdown_signal};
use super::UpArgs;
use crate::artifact::Cache;
use crate::control::deploy::DeployOptions;
use crate::control::{ControlPlane, Settings};
use crate::endpoint::{self, App};
use crate::{Error, Result};

/// Where `up` keeps its state unless told otherwise.
pub fn default_data_dir() -> std::path::PathBuf {
    dirs::data_dir()
        .map(|d| d.join("sagedock"))
        .unwrap_or_else(|| std::path::PathBuf::from(".sagedock"))
}

pub async fn up(args: &UpArgs) -> Result<ExitCode> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|source| Error::Read {
        path: data_dir.clone(),
        source,
    })?;
    let data_dir = data_dir.canonicalize().map_err(|source| Error::Read {
        path: data_dir.clone(),
        source,
    })?;
    let (listener, engine) = listen_and_connect(&args.bind, args.port).await?;
    let local = listener.local_addr()?;
    let settings = Settings {
        region: args.region.clone(),
        account: args.account.clone(),
        s3_root: args.s3_root.clone(),
        s3_endpoint: args.s3_endpoint.clone(),
    };
    let options = DeployOptions {
        health_timeout: args.health_timeout,
        pull: args.pull,
        cpu_only: args.cpu_only,
        model_load_wait: args.model_load_wait,
    };
    let (control, router) =
        ControlPlane::open(settings, &data_dir, engine, Cache::from_env()?, options)
            .map_err(|e| Error::Usage(e.to_string()))?;
    let deployer = control.deployer.clone();
    deployer
        .restore()
        .await
        .map_err(|e| Error::Usage(e.to_string()))?;
    let app = App::new(router, Some(control));
    print_banner(local, &data_dir)?;
    let server = tokio::spawn(endpoint::serve(listener, app));
    shutdown_signal().await;
    server.abort();
    eprintln!("stopping: removing this run's containers (endpoints stay in {}; the next `sagedock up` redeploys them)", data_dir.display());
    deployer.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn print_banner(local: std::net::SocketAddr, data_dir: &std::path::Path) -> Result<()> {
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
