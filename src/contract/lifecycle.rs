//! The container's life as SageMaker leads it: the start (first connection, first
//! healthy `/ping`), what the start needs (a writable `/opt/ml/model`, a network), the
//! batch parameters it offers, and the stop (SIGTERM, then SIGKILL after the grace).

use std::time::{Duration, Instant};

use super::{secs, Options, Rule};
use crate::runtime::launch;
use crate::runtime::{Engine, Instance};
use crate::transform::execution::Asked;

/// What a log says when something writes to a read-only mount.
const READ_ONLY: &str = "Read-only file system";

/// When the port first accepted a connection. Informational: SageMaker refuses nothing
/// for a late listener as long as `/ping` turns 200 within the startup limit (a
/// connection not accepted within 250 ms once serving is `ping.connect`'s).
pub(super) fn listen_rule(instance: &Instance) -> Rule {
    const CODE: &str = "start.listen";
    let Some(after) = instance.listening_after else {
        return Rule::skip(CODE, "the time to the first connection was not measured");
    };
    let mut measured = format!(
        "port {} accepted the first connection {} after the container started",
        instance.addr.port(),
        secs(after)
    );
    if after > launch::CONNECT_TIMEOUT {
        measured.push_str(": SageMaker's health checks are refused until then, which it tolerates within the startup limit");
    }
    Rule::pass(CODE, measured)
}

pub(super) fn health_rule(instance: &Instance, timeout: Duration) -> Rule {
    const CODE: &str = "start.health";
    let measured = format!(
        "/ping answered 200 {} after the container was created (the limit: {})",
        secs(instance.ready_after),
        humantime::format_duration(timeout)
    );
    if instance.ready_after > timeout / 2 {
        return Rule::warn(
            CODE,
            format!("{measured}: more than half the time allowed, on this machine"),
            "start faster (load less at start, or in parallel), or set ContainerStartupHealthCheckTimeoutInSeconds on the production variant",
        );
    }
    Rule::pass(CODE, measured)
}

pub(super) fn read_only_rule(has_model: bool, log: Option<&str>) -> Rule {
    const CODE: &str = "env.model-read-only";
    if !has_model {
        return Rule::not_applicable(CODE, "no model given: nothing was mounted at /opt/ml/model");
    }
    if let Some(line) = log.and_then(|l| l.lines().find(|line| line.contains(READ_ONLY))) {
        return Rule::fail(
            CODE,
            format!("the container wrote into a read-only place: {}", line.trim()),
            "SageMaker mounts /opt/ml/model read-only: write to /tmp (or another folder of your own) instead",
        );
    }
    Rule::pass(
        CODE,
        "served with /opt/ml/model mounted read-only, and its log shows no write refused",
    )
}

pub(super) fn isolation_rule(options: &Options, needed_network: Option<&str>) -> Rule {
    const CODE: &str = "env.network-isolation";
    let Some(why) = needed_network else {
        return Rule::pass(
            CODE,
            "started and served with no route outside this machine (as under EnableNetworkIsolation)",
        );
    };
    let measured = format!(
        "without a network the container exited at start, with one it started: it fetches something at start (a `code/requirements.txt` install, a download).\n{}",
        network_lines(why)
    );
    let fix = "put what it fetches into the image or the model artifact (pip wheels in the image, files under /opt/ml/model)";
    if options.network_isolation {
        Rule::fail(CODE, measured, fix)
    } else {
        Rule::warn(
            CODE,
            format!("{measured}\nWith EnableNetworkIsolation, or in a VPC without internet access, it cannot start."),
            fix,
        )
    }
}

/// What the log of a start without a network says went wrong: its lines that name a
/// network failure (the last three), else its first lines.
fn network_lines(error: &str) -> String {
    const SIGNS: [&str; 10] = [
        "name resolution",
        "No matching distribution found",
        "Name or service not known",
        "resolve",
        "Network is unreachable",
        "No route to host",
        "Failed to establish a new connection",
        "timed out",
        "cannot connect",
        "ConnectionError",
    ];
    let lines: Vec<&str> = error.lines().collect();
    let signs: Vec<&str> = lines
        .iter()
        .filter(|l| SIGNS.iter().any(|s| l.contains(s)))
        .copied()
        .collect();
    let shown = if signs.is_empty() {
        &lines[..lines.len().min(6)]
    } else {
        &signs[signs.len().saturating_sub(3)..]
    };
    let first = lines.first().copied().unwrap_or_default();
    let mut out = vec![first];
    out.extend(shown.iter().filter(|l| **l != first));
    out.join("\n")
}

pub(super) async fn stop_rule(engine: &Engine, instance: &Instance, timeout: Duration) -> Rule {
    const CODE: &str = "stop.sigterm";
    let grace_secs = timeout.as_secs().max(1);
    let grace = i32::try_from(grace_secs).unwrap_or(i32::MAX);
    let t0 = Instant::now();
    if let Err(e) = launch::stop(engine, &instance.guard, grace).await {
        return Rule::skip(CODE, format!("the container could not be stopped: {e}"));
    }
    let took = t0.elapsed();
    let exit = match launch::wait_exit(engine, &instance.guard).await {
        Ok(exit) => exit,
        Err(e) => return Rule::skip(CODE, format!("its exit was not seen: {e}")),
    };
    let measured = format!(
        "exited with code {}, {} after SIGTERM",
        exit.code,
        secs(took)
    );
    if exit.code == 137 && took + Duration::from_millis(500) >= Duration::from_secs(grace_secs) {
        return Rule::fail(
            CODE,
            format!("did not exit within {grace} s of SIGTERM and was killed (code 137): every scale-in, update and delete waits that long for this instance"),
            "exit on SIGTERM: as PID 1 a process gets no default signal action, so install a handler (or run the server with exec-form ENTRYPOINT so it receives the signal)",
        );
    }
    if took > Duration::from_secs(10) {
        return Rule::warn(
            CODE,
            format!("{measured}: every scale-in and update waits this long"),
            "finish in-flight requests and exit promptly on SIGTERM",
        );
    }
    Rule::pass(CODE, measured)
}

pub(super) fn batch_rule(asked: Asked) -> Rule {
    const CODE: &str = "batch.execution-parameters";
    match asked {
        Asked::Absent(status) => Rule::pass(
            CODE,
            format!("absent (HTTP {status}): transform jobs go by the request's values and SageMaker's defaults"),
        ),
        Asked::Offered { offered, problems } if problems.is_empty() => Rule::pass(
            CODE,
            format!(
                "MaxConcurrentTransforms {}, BatchStrategy {}, MaxPayloadInMB {}",
                offered.concurrency.map_or("unset".into(), |n| n.to_string()),
                offered.strategy.map_or("unset", |s| s.env_value()),
                offered.max_payload_mb.map_or("unset".into(), |n| n.to_string()),
            ),
        ),
        Asked::Offered { problems, .. } => Rule::warn(
            CODE,
            format!("answered 200, but: {}; transform jobs ignore the values they cannot read", problems.join("; ")),
            "answer {\"MaxConcurrentTransforms\": N, \"BatchStrategy\": \"MULTI_RECORD\" or \"SINGLE_RECORD\", \"MaxPayloadInMB\": N}",
        ),
        Asked::NotJson(why) => Rule::warn(
            CODE,
            format!("answered 200, but {why}; transform jobs ignore it"),
            "answer a JSON object, or 404 when there is nothing to offer",
        ),
        Asked::NoAnswer(why) => Rule::warn(
            CODE,
            format!("no answer: {why}"),
            "answer GET /execution-parameters at once (404 when there is nothing to offer)",
        ),
    }
}

/// `; last /ping: …` from a health-timeout message, when it has one.
pub(super) fn last_ping(error: &str) -> String {
    error
        .split("; ")
        .find(|part| part.starts_with("last /ping:"))
        .map(|part| format!("; {part}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Verdict;
    use crate::state::transform_job::BatchStrategy;
    use crate::transform::execution::Offered;

    #[test]
    fn execution_parameters_absent_offered_or_wrong() {
        assert_eq!(batch_rule(Asked::Absent(404)).verdict, Verdict::Pass);
        let offered = batch_rule(Asked::Offered {
            offered: Offered {
                concurrency: Some(2),
                max_payload_mb: Some(6),
                strategy: Some(BatchStrategy::SingleRecord),
            },
            problems: vec![],
        });
        assert_eq!(offered.verdict, Verdict::Pass);
        assert!(
            offered.measured.contains("BatchStrategy SINGLE_RECORD"),
            "{}",
            offered.measured
        );
        let wrong = batch_rule(Asked::Offered {
            offered: Offered::default(),
            problems: vec!["BatchStrategy \"Lines\" is not MultiRecord or SingleRecord".into()],
        });
        assert_eq!(wrong.verdict, Verdict::Warn);
        assert_eq!(
            batch_rule(Asked::NotJson("not JSON".into())).verdict,
            Verdict::Warn
        );
    }

    #[test]
    fn a_start_without_network_is_explained_by_its_network_lines() {
        let log = "container c exited with code 1 while starting; last log lines:\n  nginx noise\n  WARNING: Retrying after connection broken by 'NewConnectionError: Failed to establish a new connection: [Errno -3] Temporary failure in name resolution'\n  ERROR: No matching distribution found for tabulate==0.9.0\n  more noise";
        let shown = network_lines(log);
        assert!(
            shown.starts_with("container c exited with code 1"),
            "{shown}"
        );
        assert!(
            shown.contains("Temporary failure in name resolution"),
            "{shown}"
        );
        assert!(!shown.contains("noise"), "{shown}");
        assert_eq!(network_lines("a\nb"), "a\nb");
    }

    #[test]
    fn the_last_ping_is_taken_from_a_health_timeout() {
        let text = "container c did not answer GET /ping with 200 within 10s; last /ping: connect 1.2.3.4:8081: Connection refused; last log lines:\n  x";
        assert_eq!(
            last_ping(text),
            "; last /ping: connect 1.2.3.4:8081: Connection refused"
        );
        assert_eq!(last_ping("exited"), "");
    }
}
