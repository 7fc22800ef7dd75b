//! `sagedock check IMAGE`: the container contract checked ([`crate::contract`]), printed
//! rule by rule, as JSON with `--json`, and as JUnit XML with `--junit`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use super::process::{finish, shutdown_signal};
use super::report_file::{check_writable, write_atomically};
use super::serve::{image_and_model, parse_env};
use super::CheckArgs;
use crate::artifact::Cache;
use crate::ci::junit;
use crate::contract::{self, Options, Report, Sample, Verdict};
use crate::deploy::{DeployOptions, Deployer};
use crate::error::{Error, Result};
use crate::runtime::{instance, owner, Engine};
use crate::storage::Storage;

/// The sample request the flags describe.
fn sample(args: &CheckArgs) -> Result<Option<Sample>> {
    let Some(path) = &args.request else {
        return Ok(None);
    };
    let body = std::fs::read(path)
        .map_err(|e| Error::Argument(format!("--request {}: {e}", path.display())))?;
    let headers = args
        .request_headers
        .invocation()
        .headers()
        .map_err(|e| Error::Argument(e.to_string()))?;
    Ok(Some(Sample {
        headers,
        body: body.into(),
    }))
}

pub async fn check(args: &CheckArgs) -> Result<ExitCode> {
    // Arguments first: nothing starts for a bad one.
    let instance_type = instance::lookup(&args.container.instance_type).map_err(Error::Argument)?;
    let environment: BTreeMap<String, String> = parse_env(&args.container.env)?;
    let sample = sample(args)?;
    if let Some(junit) = &args.junit {
        check_writable("--junit", junit)?;
    }
    let engine = Engine::connect().await?;
    let model = image_and_model(
        &engine,
        &args.image,
        &args.container,
        args.limits.limits(),
        None,
    )
    .await?;
    let options = Options {
        image: args.image.clone(),
        environment,
        model,
        sample,
        instance_type,
        network_isolation: args.network_isolation,
        health_timeout: args.health_timeout,
        stop_timeout: args.stop_timeout,
        load: args.load_duration,
    };
    let deploy_options = DeployOptions {
        pull: args.container.pull,
        cpu_only: args.container.cpu_only,
        ..DeployOptions::with_capacity(args.capacity.capacity(engine.memory_bytes))
    };
    let deployer = Deployer::new(
        engine,
        Cache::from_env()?,
        Storage::None,
        owner::current(),
        args.container.region.clone(),
        deploy_options,
    );
    if !args.json {
        eprintln!(
            "checking {} on {instance_type} (start, /ping, {}load, SIGTERM)…",
            args.image,
            if options.sample.is_some() {
                "the sample request, "
            } else {
                ""
            }
        );
    }
    let report = tokio::select! {
        report = contract::check(&deployer, &options) => report,
        () = shutdown_signal() => {
            eprintln!("interrupted: removing containers");
            finish(deployer.shut_down()).await;
            return Ok(ExitCode::from(130));
        }
    };
    finish(deployer.shut_down()).await;
    let report = report.map_err(|e| match e {
        contract::CheckError::Deploy(e) => Error::from(e),
        contract::CheckError::Runtime(e) => Error::Runtime(e),
    })?;
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(|e| Error::Argument(e.to_string()))?;
        writeln!(out)?;
    } else {
        print_report(&report)?;
    }
    if let Some(path) = &args.junit {
        let suite = crate::ci::runner::contract_suite(&format!("check {}", report.image), &report);
        write_atomically(path, junit::render(&[suite]).as_bytes())?;
        if !args.json {
            println!("JUnit report: {}", path.display());
        }
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(report: &Report) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} on {}", report.image, report.instance_type)?;
    let width = report.rules.iter().map(|r| r.code.len()).max().unwrap_or(0);
    for rule in &report.rules {
        let mut lines = rule.measured.lines();
        writeln!(
            out,
            "  {:<4}  {:<width$}  {}",
            rule.verdict.as_str().to_uppercase(),
            rule.code,
            lines.next().unwrap_or("")
        )?;
        let indent = " ".repeat(width + 10);
        for line in lines {
            writeln!(out, "{indent}{line}")?;
        }
        if let Some(fix) = &rule.fix {
            writeln!(out, "{indent}fix: {fix}")?;
        }
    }
    writeln!(
        out,
        "{} rules: {} passed, {} warned, {} failed, {} skipped",
        report.rules.len(),
        report.count(Verdict::Pass),
        report.count(Verdict::Warn),
        report.count(Verdict::Fail),
        report.count(Verdict::Skip)
    )?;
    Ok(())
}
