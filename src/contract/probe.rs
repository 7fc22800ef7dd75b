//! The run: the image started the way `serve` starts it (first with no route outside this
//! machine, again with one only when that start exited), then measured — `/ping` at rest
//! and while the sample request is sent under load, the sample's answers, the engine's
//! memory and CPU figures, the exit after SIGTERM — and, when the image declares it, a
//! second start on another `SAGEMAKER_BIND_TO_PORT`.

use std::time::Duration;

use super::image::ImageFacts;
use super::invoke;
use super::lifecycle::{self, last_ping};
use super::limits::{self, follow_usage};
use super::ping::{self, ping};
use super::{secs, CheckError, Options, Rule};
use crate::deploy::{
    ContainerPlan, DeployError, Deployer, EndpointPlan, Fleet, ModelSource, VariantPlan,
};
use crate::runtime::launch;
use crate::runtime::{logs, Engine, Instance};
use crate::sync::locked;
use crate::transform::execution;

/// The endpoint and variant names the check's containers carry.
const ENDPOINT: &str = "check";
const VARIANT: &str = "AllTraffic";
/// The port the bind-to-port rule asks for.
const OTHER_PORT: u16 = 8081;
/// `/ping` after the first 200, this many times, this far apart.
const STABLE_PINGS: usize = 10;
const STABLE_INTERVAL: Duration = Duration::from_millis(100);

/// The plan one start runs: one instance of the image, as `serve` would run it.
fn plan(options: &Options, isolated: bool, port: Option<u16>, health: Duration) -> EndpointPlan {
    let mut container = ContainerPlan::new(
        &options.image,
        options.environment.clone(),
        options.model.clone(),
    );
    if let Some(port) = port {
        container = container.with_bind_port(port);
    }
    let variant = VariantPlan::new(VARIANT, options.instance_type, container)
        .with_health_timeout(health)
        .with_network_isolation(isolated);
    EndpointPlan::single(ENDPOINT, variant)
}

/// How the start went.
enum Start {
    Up {
        fleet: Fleet,
        /// Why it exited under network isolation, when it then started with a network.
        needed_network: Option<String>,
    },
    Down {
        error: String,
        /// Whether it was tried again with a network.
        retried: bool,
    },
}

/// A failed start said as the user needs it: with what the model's layout explains,
/// when a model was given (without one, the only finding is that none was mounted).
fn said(e: &DeployError, options: &Options) -> String {
    match e {
        DeployError::Start { source, .. } if matches!(options.model, ModelSource::None) => {
            source.to_string()
        }
        _ => e.to_string(),
    }
}

async fn start(deployer: &Deployer, options: &Options) -> Result<Start, CheckError> {
    let isolated = plan(options, true, None, options.health_timeout);
    let first = match deployer.launch(&isolated).await {
        Ok(fleet) => {
            return Ok(Start::Up {
                fleet,
                needed_network: None,
            })
        }
        Err(e) if e.is_start_failure() => e,
        Err(e) => return Err(e.into()),
    };
    // A container that exits at once without a network may be downloading or installing:
    // try once more with one. One that never got healthy is not tried again (it would
    // wait out the health timeout twice).
    if !first.exited_at_start() {
        return Ok(Start::Down {
            error: said(&first, options),
            retried: false,
        });
    }
    let open = plan(options, false, None, options.health_timeout);
    match deployer.launch(&open).await {
        Ok(fleet) => Ok(Start::Up {
            fleet,
            needed_network: Some(said(&first, options)),
        }),
        Err(e) if e.is_start_failure() => Ok(Start::Down {
            error: said(&e, options),
            retried: true,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Every rule the run measures, in report order.
pub(super) async fn run(
    deployer: &Deployer,
    options: &Options,
    facts: &ImageFacts,
) -> Result<Vec<Rule>, CheckError> {
    let has_model = !matches!(options.model, ModelSource::None);
    let (fleet, needed_network) = match start(deployer, options).await? {
        Start::Up {
            fleet,
            needed_network,
        } => (fleet, needed_network),
        Start::Down { error, retried } => return Ok(not_started(&error, retried, has_model)),
    };
    let Some(instance) = fleet.containers().next() else {
        fleet.remove().await;
        return Err(DeployError::Internal("the check's instance did not start".into()).into());
    };
    let mut rules = vec![bind_placeholder()];
    rules.push(lifecycle::listen_rule(instance));
    rules.push(lifecycle::health_rule(instance, options.health_timeout));
    let measured = measure(deployer.engine(), instance, options).await;
    rules.extend(measured.rules);
    let log = logs::tail(deployer.engine(), &instance.guard.id, 200).await;
    rules.push(lifecycle::read_only_rule(has_model, Some(&log)));
    rules.push(lifecycle::isolation_rule(
        options,
        needed_network.as_deref(),
    ));
    rules.push(measured.stop);
    rules.push(measured.batch);
    let ready_after = instance.ready_after;
    discard(deployer.engine(), fleet).await;
    rules[0] = bind_rule(
        deployer,
        options,
        facts,
        needed_network.is_none(),
        ready_after,
    )
    .await?;
    Ok(rules)
}

/// Stands in for the bind-to-port rule, which runs last but reports first.
fn bind_placeholder() -> Rule {
    Rule::skip("image.bind-to-port", "")
}

/// The rules when the container never got healthy.
fn not_started(error: &str, retried: bool, has_model: bool) -> Vec<Rule> {
    let why = "the container did not start";
    let mut rules = vec![
        Rule::skip("image.bind-to-port", why),
        Rule::skip("start.listen", why),
        Rule::fail(
            "start.health",
            error,
            "the container's last log lines above say why; `sagedock serve --image IMAGE` shows its whole log",
        ),
    ];
    for code in [
        "ping.stable",
        "ping.connect",
        "ping.latency",
        "invoke.answer",
        "invoke.content-type",
        "invoke.unknown-headers",
        "invoke.warm-up",
        "limits.memory",
        "limits.cpu",
        "limits.survives",
    ] {
        rules.push(Rule::skip(code, why));
    }
    rules.push(lifecycle::read_only_rule(has_model, Some(error)));
    rules.push(if retried {
        Rule::skip(
            "env.network-isolation",
            "the container did not start with a network either",
        )
    } else {
        Rule::skip("env.network-isolation", why)
    });
    rules.push(Rule::skip("stop.sigterm", why));
    rules.push(Rule::skip("batch.execution-parameters", why));
    rules
}

/// What the run measured while the container served.
struct Measured {
    rules: Vec<Rule>,
    stop: Rule,
    batch: Rule,
}

async fn measure(engine: &Engine, instance: &Instance, options: &Options) -> Measured {
    let addr = instance.addr;
    let (usage, follower) = follow_usage(engine, &instance.guard.id);
    let mut at_rest = Vec::with_capacity(STABLE_PINGS);
    for _ in 0..STABLE_PINGS {
        at_rest.push(ping(addr).await);
        tokio::time::sleep(STABLE_INTERVAL).await;
    }
    let batch = lifecycle::batch_rule(execution::ask(addr).await);
    let invoked = invoke::run(addr, options).await;
    let after = ping(addr).await;
    // One more figure from the engine after the load (and time for the engine to have
    // seen an exit, an OOM kill above all), then stop following.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    follower.abort();
    let state = engine
        .docker
        .inspect_container(&instance.guard.id, None)
        .await
        .ok()
        .and_then(|i| i.state);
    let running = state.as_ref().and_then(|s| s.running).unwrap_or(false);
    let oom = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
    let exit_code = state.as_ref().and_then(|s| s.exit_code).unwrap_or(-1);
    let usage = *locked(&usage);

    let mut rules = vec![
        ping::stable_rule(&at_rest, &invoked.pings),
        ping::connect_rule(&at_rest, &invoked.pings),
        ping::latency_rule(&at_rest, &invoked.pings),
    ];
    rules.extend(invoked.rules);
    rules.push(limits::memory_rule(usage, options, oom));
    rules.push(limits::cpu_rule(usage, options));
    rules.push(limits::survives_rule(
        running,
        oom,
        exit_code,
        &after,
        invoked.load.as_ref(),
    ));
    let stop = if running {
        lifecycle::stop_rule(engine, instance, options.stop_timeout).await
    } else {
        Rule::skip(
            "stop.sigterm",
            format!("the container had already exited (code {exit_code})"),
        )
    };
    Measured { rules, stop, batch }
}

/// Removes a fleet whose rules are measured: killed, not asked to stop (that was measured,
/// or does not matter).
async fn discard(engine: &Engine, fleet: Fleet) {
    for instance in fleet.containers() {
        let _ = launch::stop(engine, &instance.guard, 0).await;
    }
    fleet.remove().await;
}

/// The bind-to-port rule: a second start on another port, when the image declares it.
async fn bind_rule(
    deployer: &Deployer,
    options: &Options,
    facts: &ImageFacts,
    isolated: bool,
    ready_after: Duration,
) -> Result<Rule, CheckError> {
    const CODE: &str = "image.bind-to-port";
    if !facts.accepts_bind_to_port() {
        return Ok(Rule::pass(
            CODE,
            "does not declare accept-bind-to-port: SageMaker serves it on 8080, and not in an inference pipeline with another such container",
        ));
    }
    let wait = Duration::from_secs((ready_after * 3).as_secs() + 10).min(options.health_timeout);
    let plan = plan(options, isolated, Some(OTHER_PORT), wait);
    match deployer.launch(&plan).await {
        Ok(fleet) => {
            discard(deployer.engine(), fleet).await;
            Ok(Rule::pass(
                CODE,
                format!("declares accept-bind-to-port and served /ping on {OTHER_PORT} with SAGEMAKER_BIND_TO_PORT={OTHER_PORT}"),
            ))
        }
        Err(e) if e.is_start_failure() => Ok(Rule::fail(
            CODE,
            format!(
                "declares accept-bind-to-port, but with SAGEMAKER_BIND_TO_PORT={OTHER_PORT} it did not answer /ping there within {}{}",
                secs(wait),
                last_ping(&e.to_string())
            ),
            "listen on $SAGEMAKER_BIND_TO_PORT when it is set (an inference pipeline gives each container its own port), or remove the label",
        )),
        Err(e) => Err(e.into()),
    }
}
