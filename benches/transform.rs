//! Batch transform throughput: a 100,000-line CSV transformed by a transform job, against
//! the same records sent straight to the same container with the same batching and
//! concurrency by the fastest client we can write (sagedock's own HTTP client, no job
//! around it).
//!
//! Run: `cargo bench --bench transform` (needs a Docker engine and `sagedock/echo`;
//! `bash harness/images/build-all.sh` builds it). Each round, alternately:
//! - direct: the echo container started through the runtime, then the object read from
//!   disk, split into lines, packed into mini-batches (`transform::records`), sent with
//!   MaxConcurrentTransforms calls in flight, the answers assembled one per line and
//!   written to a file;
//! - sagedock: CreateTransformJob through the SageMaker API (in-process, an S3 root in a
//!   temporary directory), timed from its TransformStartTime (containers healthy) to its
//!   TransformEndTime (the `.out` written, status Completed), both stamped by sagedock.
//!
//! Container start is outside both timings. Two batchings: SingleRecord (100,000 calls,
//! sagedock's per-call cost shows) and MultiRecord with MaxPayloadInMB 1. The figure is
//! direct / sagedock of the medians (1.0 = no cost). `SAGEDOCK_BENCH_ROUNDS` (default 3),
//! `SAGEDOCK_BENCH_CONCURRENCY` (default 4).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use sagedock::control::ControlPlane;
use sagedock::runtime::{self, instance, ContainerSpec, Engine, ReadyPolicy};
use sagedock::state::transform_job::{BatchStrategy, SplitType};
use sagedock::storage::Storage;
use sagedock::transform::records;
use serde_json::json;

use common::{control_plane, median};

const LINES: usize = 100_000;

/// One job through the API; the transform's time as sagedock stamped it.
async fn with_sagedock(
    control: &ControlPlane,
    name: &str,
    strategy: BatchStrategy,
    concurrency: usize,
) -> Duration {
    let call = |op: &'static str, body: serde_json::Value| async move {
        control
            .handle(&format!("SageMaker.{op}"), body.to_string().as_bytes())
            .await
            .unwrap()
    };
    let strategy = match strategy {
        BatchStrategy::SingleRecord => "SingleRecord",
        BatchStrategy::MultiRecord => "MultiRecord",
    };
    call("CreateTransformJob", json!({
        "TransformJobName": name, "ModelName": "bench",
        "BatchStrategy": strategy, "MaxPayloadInMB": 1, "MaxConcurrentTransforms": concurrency,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bench/in/"}},
                           "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": format!("s3://bench/out/{name}"), "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    }))
    .await;
    loop {
        let d = call("DescribeTransformJob", json!({"TransformJobName": name})).await;
        match d["TransformJobStatus"].as_str() {
            Some("Completed") => {
                let start = d["TransformStartTime"].as_f64().unwrap();
                let end = d["TransformEndTime"].as_f64().unwrap();
                return Duration::from_secs_f64(end - start);
            }
            Some("InProgress") => tokio::time::sleep(Duration::from_millis(5)).await,
            _ => panic!("{d}"),
        }
    }
}

/// The same work straight to a container of the same image.
async fn direct(
    engine: &Engine,
    spec: &ContainerSpec,
    input: &std::path::Path,
    output: &std::path::Path,
    strategy: BatchStrategy,
    concurrency: usize,
) -> Duration {
    let instance = runtime::launch(engine, spec, ReadyPolicy::default())
        .await
        .unwrap();
    let to = sagedock::endpoint::http1::Destination::new(
        instance.addr,
        &hyper::http::uri::PathAndQuery::from_static("/invocations"),
    );
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    let t0 = Instant::now();
    let data = Bytes::from(tokio::fs::read(input).await.unwrap());
    let lines = records::split(&data, SplitType::Line).unwrap();
    let batches = records::batches(&data, &lines, strategy, Some(1 << 20), 1).unwrap();
    let answers: Vec<Bytes> = stream::iter(batches)
        .map(|batch| {
            let (to, headers) = (&to, &headers);
            async move {
                let answer = sagedock::endpoint::client::invoke(
                    to,
                    headers,
                    &batch.payload,
                    Duration::from_secs(600),
                )
                .await
                .map_err(|e| e.detail())?;
                Ok::<Bytes, String>(answer.body)
            }
        })
        .buffered(concurrency)
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::with_capacity(data.len() + answers.len());
    for answer in &answers {
        out.extend_from_slice(answer);
        if !answer.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    tokio::fs::write(output, out).await.unwrap();
    let took = t0.elapsed();
    instance.guard.remove().await.unwrap();
    took
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env = |key: &str, default: usize| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = env("SAGEDOCK_BENCH_ROUNDS", 3);
    let concurrency = env("SAGEDOCK_BENCH_CONCURRENCY", 4);
    let engine = Engine::connect().await.expect("a Docker engine");
    engine
        .ensure_image("sagedock/echo:latest", false, None)
        .await
        .expect("sagedock/echo (harness/images/build-all.sh)");
    let work = tempfile::tempdir().unwrap();
    let s3 = work.path().join("s3");
    let input = s3.join("bench/in/records.csv");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    let mut csv = String::new();
    for i in 0..LINES {
        csv.push_str(&format!(
            "{i},{:.4},{:.4},{:.4}\n",
            i as f64 * 0.5,
            (i % 97) as f64,
            1.0 / (i + 1) as f64
        ));
    }
    std::fs::write(&input, &csv).unwrap();
    let (control, _lock) = control_plane(&engine, work.path(), Storage::root(&s3).unwrap());
    let quiet = [("ECHO_QUIET".to_string(), "1".to_string())];
    control
        .handle(
            "SageMaker.CreateModel",
            json!({"ModelName": "bench", "PrimaryContainer": {"Image": "sagedock/echo:latest", "Environment": {"ECHO_QUIET": "1"}}})
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap();
    let itype = instance::lookup("ml.m5.large").unwrap();
    println!(
        "transform bench: {LINES} CSV lines ({} bytes), sagedock/echo, ml.m5.large, {concurrency} calls in flight, median of {rounds}:",
        csv.len()
    );
    for strategy in [BatchStrategy::SingleRecord, BatchStrategy::MultiRecord] {
        let (mut base, mut ours) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let name = format!(
                "bench-{}-{round}",
                strategy.env_value().to_lowercase().replace('_', "-")
            );
            let spec = ContainerSpec::new(
                format!("sagedock-bench-{name}-{}", std::process::id()),
                "sagedock/echo:latest",
                itype,
            )
            .with_env(quiet.clone().into());
            let reference = work.path().join(format!("{name}.out"));
            // In a task of its own, as a job runs (the main thread's future is driven
            // from outside the runtime's workers).
            let run_direct = || {
                let (engine, spec, input, reference) = (
                    engine.clone(),
                    spec.clone(),
                    input.clone(),
                    reference.clone(),
                );
                async move {
                    tokio::spawn(async move {
                        direct(&engine, &spec, &input, &reference, strategy, concurrency).await
                    })
                    .await
                    .unwrap()
                }
            };
            if round % 2 == 0 {
                base.push(run_direct().await);
                ours.push(with_sagedock(&control, &name, strategy, concurrency).await);
            } else {
                ours.push(with_sagedock(&control, &name, strategy, concurrency).await);
                base.push(run_direct().await);
            }
            let written =
                std::fs::read(s3.join(format!("bench/out/{name}/records.csv.out"))).unwrap();
            assert_eq!(
                written,
                std::fs::read(&reference).unwrap(),
                "the outputs differ"
            );
            eprintln!(
                "{name}: direct {:.2?}, sagedock {:.2?}",
                base[round], ours[round]
            );
        }
        let (b, o) = (median(base), median(ours));
        println!(
            "  {:<13} direct {:>8.2?} ({:>7.0} records/s)   sagedock {:>8.2?} ({:>7.0} records/s)   direct/sagedock {:.2}x",
            strategy.env_value(),
            b,
            LINES as f64 / b.as_secs_f64(),
            o,
            LINES as f64 / o.as_secs_f64(),
            b.as_secs_f64() / o.as_secs_f64()
        );
    }
}
