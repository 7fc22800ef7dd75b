//! `sagedock bench`: turns the arguments into a [`Load`], runs it and prints the report.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};

use super::BenchArgs;
use crate::bench::{self, Load, Report};
use crate::{Error, Result};

pub async fn bench(args: &BenchArgs) -> Result<ExitCode> {
    let load = load(args)?;
    if !args.json {
        println!("{}", describe(&load));
    }
    let report = bench::run(load).await?;
    let broken = broken_budgets(args.max_p50, args.max_p99, &report);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        print_report(&mut out, &report, &broken)?;
    }
    let passed = passed(&report, &broken);
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every request answered 2xx, on schedule, within the budgets.
pub(super) fn passed(report: &Report, broken: &[String]) -> bool {
    report.failed == 0 && report.unsent == 0 && report.ok > 0 && broken.is_empty()
}

fn load(args: &BenchArgs) -> Result<Load> {
    let url = match (&args.url, &args.endpoint) {
        (Some(url), _) => url.clone(),
        (None, Some(name)) => format!(
            "{}/endpoints/{name}/invocations",
            args.endpoint_url.trim_end_matches('/')
        ),
        (None, None) => return Err(Error::Usage("give --endpoint NAME or --url URL".into())),
    };
    let url = url
        .parse()
        .map_err(|e| Error::Usage(format!("bench URL {url}: {e}")))?;
    let body = match (&args.body, &args.body_text) {
        (Some(path), _) => Bytes::from(std::fs::read(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?),
        (None, Some(text)) => Bytes::from(text.clone()),
        (None, None) => Bytes::new(),
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: HeaderName, value: &str| -> Result<()> {
        let value = HeaderValue::from_str(value)
            .map_err(|_| Error::Usage(format!("{name}: {value:?} is not a valid header value")))?;
        headers.insert(name, value);
        Ok(())
    };
    set(CONTENT_TYPE, &args.content_type)?;
    if let Some(accept) = &args.accept {
        set(ACCEPT, accept)?;
    }
    let optional = [
        (
            "x-amzn-sagemaker-custom-attributes",
            &args.custom_attributes,
        ),
        ("x-amzn-sagemaker-target-variant", &args.target_variant),
        ("x-amzn-sagemaker-target-model", &args.target_model),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            set(HeaderName::from_static(name), value)?;
        }
    }
    if args.concurrency == 0 {
        return Err(Error::Usage("--concurrency must be at least 1".into()));
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Error::Usage(format!(
                "--rate {rate}: give a number of requests per second above 0"
            )));
        }
    }
    if args.duration.is_zero() {
        return Err(Error::Usage("--duration must be longer than 0".into()));
    }
    Ok(Load {
        url,
        headers,
        body,
        connections: args.concurrency,
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        timeout: args.timeout,
    })
}

fn describe(load: &Load) -> String {
    let schedule = match load.rate {
        Some(rate) => format!("open loop at {rate} requests/s"),
        None => "closed loop".to_string(),
    };
    format!(
        "POST {} ({} bytes): {schedule}, {} connection(s), {} measured after a {} warm-up",
        load.url,
        load.body.len(),
        load.connections,
        humantime::format_duration(load.duration),
        humantime::format_duration(load.warmup),
    )
}

/// The latency budgets the report breaks, said as such.
pub(super) fn broken_budgets(
    max_p50: Option<Duration>,
    max_p99: Option<Duration>,
    report: &Report,
) -> Vec<String> {
    let Some(latency) = &report.latency_ms else {
        return Vec::new();
    };
    let budgets = [
        ("p50", latency.p50, max_p50, "max p50"),
        ("p99", latency.p99, max_p99, "max p99"),
    ];
    budgets
        .into_iter()
        .filter_map(|(name, ms, budget, flag)| {
            let budget = budget?;
            (Duration::from_secs_f64(ms / 1000.0) > budget).then(|| {
                format!(
                    "{name} {} exceeds {flag} {}",
                    millis(ms),
                    humantime::format_duration(budget)
                )
            })
        })
        .collect()
}

fn millis(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

pub(super) fn print_report(out: &mut impl Write, report: &Report, broken: &[String]) -> Result<()> {
    writeln!(
        out,
        "requests  {} answered 2xx, {} failed: {:.1} per second",
        report.ok, report.failed, report.throughput
    )?;
    match &report.latency_ms {
        Some(l) => writeln!(
            out,
            "latency   min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {})",
            millis(l.min),
            millis(l.p50),
            millis(l.p90),
            millis(l.p99),
            millis(l.p999),
            millis(l.max),
            millis(l.mean)
        )?,
        None => writeln!(out, "latency   none: no request was answered 2xx")?,
    }
    if report.variants.len() > 1 {
        for (i, (name, v)) in report.variants.iter().enumerate() {
            let label = if i == 0 { "variants" } else { "" };
            writeln!(
                out,
                "{label:9} {name}: {} ({:.1}%)  p50 {}  p90 {}  p99 {}  max {}",
                v.ok,
                v.share * 100.0,
                millis(v.p50),
                millis(v.p90),
                millis(v.p99),
                millis(v.max)
            )?;
        }
    }
    for (i, (kind, n)) in report.failures.iter().enumerate() {
        let label = if i == 0 { "failures" } else { "" };
        writeln!(out, "{label:9} {kind}: {n}")?;
    }
    if report.unsent > 0 {
        let asked = report.rate.unwrap_or_default();
        writeln!(
            out,
            "behind    {} requests fell due in the window and were never sent: the target kept up with {:.1}/s of the {asked}/s asked (more --concurrency, or a lower --rate)",
            report.unsent, report.throughput
        )?;
    }
    for b in broken {
        writeln!(out, "budget    {b}")?;
    }
    Ok(())
}
