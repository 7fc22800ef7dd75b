//! `sagedock demo`: the whole job end to end on a bundled fixture.
//!
//! Starts the control plane and runtime API in-process on a free port, then acts as a
//! client exactly as boto3 would (AWS JSON 1.1 calls with `X-Amz-Target`, then
//! InvokeEndpoint over HTTP): CreateModel → CreateEndpointConfig → CreateEndpoint → wait
//! for InService → InvokeEndpoint, prints the answer and a latency summary, and deletes
//! everything it made.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::progress;
use super::DemoArgs;
use crate::artifact::{self, Cache, PackOptions};
use crate::control::{ControlPlane, Options, Settings};
use crate::deploy::{Capacity, DeployOptions};
use crate::endpoint::MODEL_LOAD_WAIT;
use crate::error::{Error, Result};
use crate::runtime::owner::{self, DataDirLock};
use crate::runtime::Engine;
use crate::server::{self, App};
use crate::storage::Storage;

/// The demo's serving images: SageMaker's TensorFlow Serving contract on real TensorFlow
/// (the default), or the small echo test image (`--echo`).
const TENSORFLOW_IMAGE: &str = "sagedock/tensorflow:latest";
const ECHO_IMAGE: &str = "sagedock/echo:latest";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the image with the repository's recipe when the engine lacks it.
async fn ensure_image(engine: &Engine, image: &str, recipe: &str, how_long: &str) -> Result<()> {
    if engine.ensure_image(image, false, None).await.is_ok() {
        return Ok(());
    }
    let script = repo_root().join(recipe);
    println!(
        "building {image} with {} (first run only; {how_long})",
        script.display()
    );
    let mut build = tokio::process::Command::new("bash");
    build.arg(&script);
    // On a terminal the build's output goes to a log, its last line on the progress line;
    // else it streams as it comes.
    let meter = progress::meter();
    let log = match &meter {
        Some(_) => Some(
            tempfile::Builder::new()
                .prefix("sagedock-build-")
                .suffix(".log")
                .tempfile()?,
        ),
        None => None,
    };
    if let Some(log) = &log {
        build.stdout(log.reopen()?).stderr(log.reopen()?);
    }
    let line = progress::show(&meter);
    let follower = meter
        .clone()
        .zip(log.as_ref().map(|l| l.path().to_path_buf()))
        .map(|(meter, path)| {
            let image = image.to_string();
            tokio::spawn(async move {
                loop {
                    let last = last_line(&path).unwrap_or_default();
                    meter.note(format!("building {image}: {last}"));
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        });
    let status = build.status().await;
    if let Some(follower) = follower {
        follower.abort();
    }
    drop(line);
    let status =
        status.map_err(|e| Error::Demo(format!("cannot run {}: {e}", script.display())))?;
    if !status.success() {
        return Err(Error::Demo(match log {
            Some(log) => {
                let (_, kept) = log.keep().map_err(|e| Error::Demo(e.to_string()))?;
                format!(
                    "{} failed; its output is in {}:\n{}",
                    script.display(),
                    kept.display(),
                    tail(&kept, 30)
                )
            }
            None => format!("{} failed; see its output above", script.display()),
        }));
    }
    Ok(())
}

/// The last line of a file that is being written.
fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.chars().take(100).collect())
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One AWS JSON 1.1 call, as botocore makes it.
async fn call(client: &HttpClient, url: &str, op: &str, body: Value) -> Result<Value> {
    let request = hyper::Request::post(format!("{url}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("SageMaker.{op}"))
        .body(Full::new(Bytes::from(
            serde_json::to_vec(&body).expect("json"),
        )))
        .expect("a valid request");
    let response = client
        .request(request)
        .await
        .map_err(|e| Error::Demo(format!("{op}: {e}")))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(Error::Demo(format!(
            "{op} failed: {} {}",
            value["__type"], value["message"]
        )));
    }
    Ok(value)
}

async fn invoke(
    client: &HttpClient,
    url: &str,
    endpoint: &str,
    body: &'static [u8],
) -> Result<(Duration, String, String)> {
    let request = hyper::Request::post(format!("{url}/endpoints/{endpoint}/invocations"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .expect("a valid request");
    let t0 = Instant::now();
    let response = client
        .request(request)
        .await
        .map_err(|e| Error::Demo(format!("InvokeEndpoint: {e}")))?;
    let variant = response
        .headers()
        .get("x-amzn-invoked-production-variant")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok((
        t0.elapsed(),
        variant,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(clippy::cast_precision_loss)]
    let last = (sorted.len() - 1) as f64;
    let idx = usize::try_from(crate::units::saturating_u64((last * p).round())).unwrap_or(0);
    sorted[idx.min(sorted.len() - 1)]
}

pub async fn demo(args: &DemoArgs) -> Result<ExitCode> {
    let engine = Engine::connect().await?;
    let image = serving_image(&engine, args.echo).await?;
    let work = tempfile::Builder::new()
        .prefix("sagedock-demo-")
        .tempdir()?;
    let s3 = work.path().join("s3");
    let archive = s3.join("demo-bucket/models/model.tar.gz");
    std::fs::create_dir_all(archive.parent().expect("a parent"))?;
    let fixture = repo_root().join("fixtures/models/tensorflow");
    let packed = artifact::pack(&fixture, &archive, &PackOptions::default())?;
    println!(
        "packed {} into s3://demo-bucket/models/model.tar.gz (sha256 {})",
        fixture.display(),
        &packed.sha256[..16]
    );

    let meter = progress::meter();
    let (url, control, _lock) = start_server(engine, work.path(), &s3, meter.clone()).await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let t0 = Instant::now();
    let arn = call(&client, &url, "CreateModel", json!({
        "ModelName": "demo-model",
        "PrimaryContainer": {"Image": image, "ModelDataUrl": "s3://demo-bucket/models/model.tar.gz", "Environment": {"ECHO_QUIET": "1"}},
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
    })).await?;
    println!(
        "CreateModel          -> {}",
        arn["ModelArn"].as_str().unwrap_or("")
    );
    call(&client, &url, "CreateEndpointConfig", json!({
        "EndpointConfigName": "demo-config",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "demo-model", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    })).await?;
    println!("CreateEndpointConfig -> demo-config");
    call(
        &client,
        &url,
        "CreateEndpoint",
        json!({"EndpointName": "demo-endpoint", "EndpointConfigName": "demo-config"}),
    )
    .await?;
    let line = progress::show(&meter);
    let status = wait_for_status(&client, &url).await;
    drop(line);
    let status = status?;
    println!(
        "CreateEndpoint       -> demo-endpoint {status} after {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let outcome = if status == "InService" {
        exercise(&client, &url, args.requests.max(1)).await
    } else {
        Ok(())
    };
    tear_down(&client, &url).await?;
    println!("DeleteEndpoint, DeleteEndpointConfig, DeleteModel: cleaned up");
    control.shutdown().await;
    outcome?;
    Ok(if status == "InService" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The demo's serving image, built from the repository's recipe on first use.
async fn serving_image(engine: &Engine, echo: bool) -> Result<&'static str> {
    Ok(if echo {
        ensure_image(
            engine,
            ECHO_IMAGE,
            "harness/images/echo/build.sh",
            "seconds",
        )
        .await?;
        ECHO_IMAGE
    } else {
        let how_long = "a Debian base and TensorFlow from PyPI: a few minutes";
        ensure_image(
            engine,
            TENSORFLOW_IMAGE,
            "harness/images/tensorflow/build.sh",
            how_long,
        )
        .await?;
        TENSORFLOW_IMAGE
    })
}

/// DeleteEndpoint (waiting until it is gone), DeleteEndpointConfig, DeleteModel.
async fn tear_down(client: &HttpClient, url: &str) -> Result<()> {
    call(
        client,
        url,
        "DeleteEndpoint",
        json!({"EndpointName": "demo-endpoint"}),
    )
    .await?;
    while call(
        client,
        url,
        "DescribeEndpoint",
        json!({"EndpointName": "demo-endpoint"}),
    )
    .await
    .is_ok()
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    call(
        client,
        url,
        "DeleteEndpointConfig",
        json!({"EndpointConfigName": "demo-config"}),
    )
    .await?;
    call(
        client,
        url,
        "DeleteModel",
        json!({"ModelName": "demo-model"}),
    )
    .await?;
    Ok(())
}

/// Serves the control plane and runtime API from this process on a free port; returns its
/// URL, and the data directory's lock (held while the demo runs).
async fn start_server(
    engine: Engine,
    work: &Path,
    s3: &Path,
    meter: Option<Arc<crate::progress::Meter>>,
) -> Result<(String, Arc<ControlPlane>, DataDirLock)> {
    let data = work.join("data");
    let lock = owner::claim(&data)?;
    let options = Options {
        health_timeout: Duration::from_secs(120),
        model_load_wait: MODEL_LOAD_WAIT,
        deploy: DeployOptions {
            meter,
            ..DeployOptions::with_capacity(Capacity::for_memory(engine.memory_bytes))
        },
    };
    let settings = Settings {
        region: REGION.into(),
        account: ACCOUNT.into(),
    };
    let (control, router) = ControlPlane::open(
        settings,
        &data,
        lock.owner.clone(),
        engine,
        Cache::at(work.join("cache")),
        Storage::root(s3)?,
        std::sync::Arc::new(crate::logs::LogRecord::open(&data.join("logs")).map_err(
            |source| crate::error::Error::Write {
                path: data.join("logs"),
                source,
            },
        )?),
        options,
    )?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(server::serve(
        listener,
        App::new(router, Some(control.clone())),
        server::Limits::default(),
    ));
    println!("sagedock API on {url} (what `sagedock up` serves)");
    Ok((url, control, lock))
}

async fn wait_for_status(client: &HttpClient, url: &str) -> Result<String> {
    loop {
        let described = call(
            client,
            url,
            "DescribeEndpoint",
            json!({"EndpointName": "demo-endpoint"}),
        )
        .await?;
        match described["EndpointStatus"].as_str().unwrap_or("") {
            "Creating" => tokio::time::sleep(Duration::from_millis(100)).await,
            "Failed" => {
                println!(
                    "endpoint failed: {}",
                    described["FailureReason"].as_str().unwrap_or("")
                );
                return Ok("Failed".into());
            }
            other => return Ok(other.to_string()),
        }
    }
}

async fn exercise(client: &HttpClient, url: &str, requests: usize) -> Result<()> {
    let payload: &'static [u8] = br#"{"instances": [[6.4, 3.2, 4.5, 1.5]]}"#;
    let (_, variant, answer) = invoke(client, url, "demo-endpoint", payload).await?;
    println!("InvokeEndpoint       -> variant {variant}, answer {answer}");
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        times.push(invoke(client, url, "demo-endpoint", payload).await?.0);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "latency over {requests} sequential invocations: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.9)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().expect("at least one"))
    );
    Ok(())
}
