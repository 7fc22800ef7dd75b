//! Readiness overhead: how much longer sagedock takes to bring a serving container to
//! "healthy" than the fastest possible client of the same engine.
//!
//! Run: `cargo bench --bench serve_ready` (needs a Docker engine and `sagedock/echo`;
//! `bash harness/images/build-all.sh` builds it). Each round, alternately:
//! - baseline: create + start the same container through the Docker API, then poll
//!   `GET /ping` every 1 ms until it answers 200 (the container's own time to healthy,
//!   plus the engine's create/start time, with no tool in between);
//! - sagedock: `runtime::launch` (create, guard, start, inspect, readiness poll);
//! - control plane: CreateEndpoint through the SageMaker API (in-process, with a store in
//!   a temporary directory), then DescribeEndpoint every 1 ms until `InService`.
//!
//! The overheads are differences of medians. `SAGEDOCK_BENCH_ROUNDS` (default 10).

mod common;

use std::time::{Duration, Instant};

use sagedock::control::ControlPlane;
use sagedock::runtime::{self, instance, launch::ping, ContainerSpec, Engine, ReadyPolicy};
use sagedock::storage::Storage;
use serde_json::json;

use common::{control_plane, median};

async fn baseline(engine: &Engine, spec: &ContainerSpec) -> Duration {
    let t0 = Instant::now();
    let body = spec
        .create_body(engine.cpus, engine.nvidia_runtime)
        .unwrap();
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    let id = engine
        .docker
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id;
    engine.docker.start_container(&id, None).await.unwrap();
    let info = engine.docker.inspect_container(&id, None).await.unwrap();
    let ip = info
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|m| m.values().find_map(|e| e.ip_address.clone()))
        .unwrap();
    let addr = format!("{ip}:8080").parse().unwrap();
    while ping(addr).await != Ok(200) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = t0.elapsed();
    runtime::guard::remove_container(engine, &id, &spec.name)
        .await
        .unwrap();
    took
}

async fn with_sagedock(engine: &Engine, spec: &ContainerSpec) -> Duration {
    let t0 = Instant::now();
    let instance = runtime::launch(engine, spec, ReadyPolicy::default())
        .await
        .unwrap();
    let took = t0.elapsed();
    instance.guard.remove().await.unwrap();
    took
}

async fn through_control_plane(control: &ControlPlane, round: usize) -> Duration {
    let name = format!("bench-{round}");
    let call = |op: &'static str, body: serde_json::Value| async move {
        control
            .handle(&format!("SageMaker.{op}"), body.to_string().as_bytes())
            .await
            .unwrap()
    };
    call("CreateModel", json!({"ModelName": name, "PrimaryContainer": {"Image": "sagedock/echo:latest", "Environment": {"ECHO_QUIET": "1"}}})).await;
    call("CreateEndpointConfig", json!({"EndpointConfigName": name, "ProductionVariants": [{"VariantName": "v", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}]})).await;
    let t0 = Instant::now();
    call(
        "CreateEndpoint",
        json!({"EndpointName": name, "EndpointConfigName": name}),
    )
    .await;
    loop {
        let d = call("DescribeEndpoint", json!({"EndpointName": name})).await;
        if d["EndpointStatus"] == "InService" {
            break;
        }
        assert_ne!(d["EndpointStatus"], "Failed", "{d}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = t0.elapsed();
    call("DeleteEndpoint", json!({"EndpointName": name})).await;
    while control
        .handle(
            "SageMaker.DescribeEndpoint",
            json!({"EndpointName": name}).to_string().as_bytes(),
        )
        .await
        .is_ok()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    took
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("SAGEDOCK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let engine = Engine::connect().await.expect("a Docker engine");
    engine
        .ensure_image("sagedock/echo:latest", false, None)
        .await
        .expect("sagedock/echo (harness/images/build-all.sh)");
    let itype = instance::lookup("ml.m5.large").unwrap();
    let work = tempfile::tempdir().unwrap();
    let (control, _lock) = control_plane(&engine, work.path(), Storage::None);
    let (mut base, mut ours, mut api) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let spec = |who: &str| {
            ContainerSpec::new(
                format!("sagedock-bench-{who}-{round}-{}", std::process::id()),
                "sagedock/echo:latest",
                itype,
            )
            .with_env([("ECHO_QUIET".to_string(), "1".to_string())].into())
        };
        if round % 2 == 0 {
            base.push(baseline(&engine, &spec("base")).await);
            ours.push(with_sagedock(&engine, &spec("ours")).await);
        } else {
            ours.push(with_sagedock(&engine, &spec("ours")).await);
            base.push(baseline(&engine, &spec("base")).await);
        }
        api.push(through_control_plane(&control, round).await);
        eprintln!(
            "round {round}: baseline {:.1?}, sagedock {:.1?}, CreateEndpoint->InService {:.1?}",
            base[round], ours[round], api[round]
        );
    }
    let (b, o, a) = (median(base), median(ours), median(api));
    println!("serve_ready bench (sagedock/echo, ml.m5.large, median of {rounds}):");
    println!("  create+start+first 200 /ping, direct:   {:>8.1?}", b);
    println!("  runtime::launch (sagedock):              {:>8.1?}", o);
    println!(
        "  overhead:                                {:>8.1} ms",
        (o.as_secs_f64() - b.as_secs_f64()) * 1e3
    );
    println!(
        "  CreateEndpoint -> DescribeEndpoint InService: {:>8.1?}",
        a
    );
    println!(
        "  overhead:                                {:>8.1} ms",
        (a.as_secs_f64() - b.as_secs_f64()) * 1e3
    );
}
