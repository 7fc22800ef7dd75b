//! `sagedock bench`: turns the arguments into a [`Load`], runs it and prints the report.

use std::io::Write;
use std::process::ExitCode;

use bytes::Bytes;

use super::BenchArgs;
use crate::bench::{self, Invocation, Load};
use crate::error::{Error, Result};

pub async fn bench(args: &BenchArgs) -> Result<ExitCode> {
    let load = load(args)?;
    if !args.json {
        println!("{}", describe(&load));
    }
    let report = bench::run(load).await?;
    let broken = report.broken_budgets(args.max_p50, args.max_p99);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        report.render(&mut out, &broken)?;
    }
    Ok(if report.passed(&broken) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn load(args: &BenchArgs) -> Result<Load> {
    let url = match (&args.url, &args.endpoint) {
        (Some(url), _) => url.clone(),
        (None, Some(name)) => format!(
            "{}/endpoints/{name}/invocations",
            args.endpoint_url.trim_end_matches('/')
        ),
        (None, None) => return Err(Error::Argument("give --endpoint NAME or --url URL".into())),
    };
    let url = url
        .parse()
        .map_err(|e| Error::Argument(format!("bench URL {url}: {e}")))?;
    let body = match (&args.body, &args.body_text) {
        (Some(path), _) => Bytes::from(std::fs::read(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?),
        (None, Some(text)) => Bytes::from(text.clone()),
        (None, None) => Bytes::new(),
    };
    let headers = Invocation {
        content_type: Some(&args.request.content_type),
        accept: args.request.accept.as_deref(),
        custom_attributes: args.request.custom_attributes.as_deref(),
        target_variant: args.target_variant.as_deref(),
        target_model: args.target_model.as_deref(),
    }
    .headers()
    .map_err(|e| Error::Argument(e.to_string()))?;
    if args.concurrency == 0 {
        return Err(Error::Argument("--concurrency must be at least 1".into()));
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Error::Argument(format!(
                "--rate {rate}: give a number of requests per second above 0"
            )));
        }
    }
    if args.duration.is_zero() {
        return Err(Error::Argument("--duration must be longer than 0".into()));
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
