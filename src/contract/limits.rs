//! The engine's memory and CPU figures for the container while it serves (every second,
//! as `docker stats` reads them), against the instance type's limits, and whether the
//! container is still running and healthy after the load.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;

use super::ping::PingSample;
use super::{Options, Rule};
use crate::bench;
use crate::runtime::{stats, Engine};
use crate::sync::locked;

/// The engine's memory and CPU figures for the container, their peaks.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Usage {
    samples: u32,
    peak_memory: u64,
    /// In CPUs.
    peak_cpus: f64,
}

/// Follows the engine's figures until aborted.
pub(super) fn follow_usage(
    engine: &Engine,
    id: &str,
) -> (Arc<Mutex<Usage>>, tokio::task::JoinHandle<()>) {
    let usage = Arc::new(Mutex::new(Usage::default()));
    let (figures, shared) = (stats::follow(engine, id), usage.clone());
    let task = tokio::spawn(async move {
        let mut figures = std::pin::pin!(figures);
        let mut last: Option<stats::Usage> = None;
        while let Some(figure) = figures.next().await {
            let mut u = locked(&shared);
            if let Some(memory) = figure.memory_bytes {
                u.samples += 1;
                u.peak_memory = u.peak_memory.max(memory);
            }
            if let Some(cpus) = last.and_then(|earlier| figure.cpus_since(&earlier)) {
                u.peak_cpus = u.peak_cpus.max(cpus);
            }
            if figure.cpu_total_ns.is_some() {
                last = Some(figure);
            }
        }
    });
    (usage, task)
}

const MIB: f64 = 1024.0 * 1024.0;

pub(super) fn memory_rule(usage: Usage, options: &Options, oom: bool) -> Rule {
    const CODE: &str = "limits.memory";
    let it = &options.instance_type;
    let limit = it.memory_mib as f64 * MIB;
    if oom {
        return Rule::fail(
            CODE,
            format!("the container was OOM-killed: it went over the {} MiB of {}", it.memory_mib, it.name),
            "choose an instance type with more memory, or use less (fewer workers: each loads its own copy of the model)",
        );
    }
    if usage.samples == 0 {
        return Rule::skip(CODE, "the engine gave no memory figures");
    }
    let peak = usage.peak_memory as f64;
    if it.is_local() {
        return Rule::pass(
            CODE,
            format!("peak {:.0} MiB (local: no limit)", peak / MIB),
        );
    }
    let measured = format!(
        "peak {:.0} MiB of {} MiB ({:.0} %), in {} figures from the engine",
        peak / MIB,
        it.memory_mib,
        peak / limit * 100.0,
        usage.samples
    );
    if peak > limit * 0.9 {
        return Rule::warn(
            CODE,
            format!("{measured}: little room for bigger requests or more workers"),
            "choose an instance type with more memory, or use less",
        );
    }
    Rule::pass(CODE, measured)
}

pub(super) fn cpu_rule(usage: Usage, options: &Options) -> Rule {
    const CODE: &str = "limits.cpu";
    if usage.samples < 2 {
        return Rule::skip(CODE, "the engine gave too few CPU figures");
    }
    let it = &options.instance_type;
    if it.is_local() {
        return Rule::pass(
            CODE,
            format!("peak {:.2} CPUs (local: no limit)", usage.peak_cpus),
        );
    }
    Rule::pass(
        CODE,
        format!("peak {:.2} of {} vCPUs", usage.peak_cpus, it.vcpus),
    )
}

pub(super) fn survives_rule(
    running: bool,
    oom: bool,
    exit_code: i64,
    after: &PingSample,
    report: Option<&Result<bench::Report, String>>,
) -> Rule {
    const CODE: &str = "limits.survives";
    let load = match report {
        None => "no load was sent (no sample request answered)".to_string(),
        Some(Err(why)) => format!("the load could not run: {why}"),
        Some(Ok(r)) => {
            let latency = r
                .latency_ms
                .as_ref()
                .map(|l| format!("; p50 {:.1} ms, p99 {:.1} ms", l.p50, l.p99))
                .unwrap_or_default();
            format!(
                "{} of {} requests answered 2xx under load ({} connections, {:.1} s{latency})",
                r.ok, r.requests, r.connections, r.duration_s
            )
        }
    };
    if !running {
        return Rule::fail(
            CODE,
            format!(
                "{load}; the container exited with code {exit_code}{}",
                if oom { " (OOM-killed)" } else { "" }
            ),
            "a container that dies under load is replaced by SageMaker, and its requests fail: see its log",
        );
    }
    if after.answer != Ok(200) {
        return Rule::fail(
            CODE,
            format!(
                "{load}; /ping after the load: {}",
                match &after.answer {
                    Ok(s) => format!("HTTP {s}"),
                    Err(e) => e.to_string(),
                }
            ),
            "keep /ping 200 after load: SageMaker replaces an instance whose health checks fail",
        );
    }
    if let Some(Ok(r)) = report {
        if r.failed > 0 {
            let kinds: Vec<String> = r
                .failures
                .iter()
                .map(|(k, n)| format!("{n} × {k}"))
                .collect();
            return Rule::fail(
                CODE,
                format!("{load}; failures: {}", kinds.join(", ")),
                "answer every request the instance is sent at this concurrency, or choose a bigger instance type",
            );
        }
    }
    Rule::pass(CODE, format!("{load}; still running, /ping 200 after"))
}
