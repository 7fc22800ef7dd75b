//! The container commands: ps, logs, gc.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::process::shutdown_signal;
use super::{GcArgs, LogsArgs, PsArgs};
use crate::error::{Error, Result};
use crate::logs::LogRecord;
use crate::runtime::{self, gc};

pub async fn ps(args: &PsArgs) -> Result<ExitCode> {
    let engine = args.engine.connect().await?;
    let found = gc::list(&engine).await?;
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &found).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<40} {:<14} {:<12} {:<24} {:<9} {:>8} {:>6}  OWNER",
        "NAME", "ENDPOINT/JOB", "VARIANT", "IMAGE", "STATE", "AGE", "PORT"
    )?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    for c in &found {
        let age = humantime::format_duration(Duration::from_secs(
            u64::try_from(now - c.created_unix).unwrap_or(0),
        ))
        .to_string();
        let age = age.split_whitespace().next().unwrap_or("").to_string();
        writeln!(
            out,
            "{:<40} {:<14} {:<12} {:<24} {:<9} {:>8} {:>6}  {}",
            c.name,
            whose(c),
            c.variant,
            c.image,
            c.state,
            age,
            c.host_port
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            if c.owner_alive {
                "running"
            } else {
                "gone (sagedock gc removes it)"
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The endpoint, training job or transform job a container belongs to.
fn whose(c: &gc::Managed) -> &str {
    if !c.endpoint.is_empty() {
        return &c.endpoint;
    }
    [
        runtime::labels::TRAINING_JOB,
        runtime::labels::TRANSFORM_JOB,
    ]
    .iter()
    .find_map(|key| c.labels.get(*key))
    .map_or("", String::as_str)
}

pub async fn logs(args: &LogsArgs) -> Result<ExitCode> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(super::up::default_data_dir);
    if let Some(record) = LogRecord::existing(&data_dir.join("logs")) {
        let group = crate::logs::endpoint_group(&args.name);
        if record.streams(&group).is_some() {
            return logs_from_record(&record, &group, "", args).await;
        }
        let job = format!("{}/", args.name);
        for group in [
            crate::logs::TRAINING_JOBS_GROUP,
            crate::logs::TRANSFORM_JOBS_GROUP,
        ] {
            let streams = record.streams(group).unwrap_or_default();
            if streams.iter().any(|s| s.name.starts_with(&job)) {
                return logs_from_record(&record, group, &job, args).await;
            }
        }
    }
    let engine = args.engine.connect().await?;
    let found = gc::list(&engine).await?;
    let chosen: Vec<_> = found
        .iter()
        .filter(|c| c.name == args.name || c.endpoint == args.name || c.id.starts_with(&args.name))
        .collect();
    if chosen.is_empty() {
        return Err(Error::Argument(format!(
            "no sagedock container or endpoint named '{}'; `sagedock ps` lists them",
            args.name
        )));
    }
    let tail = args
        .tail
        .map(|n| n.to_string())
        .unwrap_or_else(|| "all".into());
    let tasks = chosen.iter().map(|c| {
        let prefix = if chosen.len() > 1 {
            c.name.clone()
        } else {
            String::new()
        };
        tokio::spawn(runtime::logs::follow(
            engine.clone(),
            c.id.clone(),
            prefix,
            tail.clone(),
            args.follow,
        ))
    });
    let all = futures_util::future::join_all(tasks);
    tokio::select! {
        _ = all => {}
        () = shutdown_signal() => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// An endpoint's log group (or a training or transform job's streams, `prefix` `<job>/`)
/// from `up`'s
/// record: the streams merged in time order (each line prefixed with its stream when there
/// are several), then, with --follow, new lines as they are recorded (replacement
/// instances' streams included) until Ctrl-C.
async fn logs_from_record(
    record: &LogRecord,
    group: &str,
    prefix: &str,
    args: &LogsArgs,
) -> Result<ExitCode> {
    let mut seen = HashMap::new();
    let mut first = record.unseen(group, prefix, &mut seen);
    if let Some(n) = args.tail {
        first.drain(..first.len().saturating_sub(n));
    }
    let many = seen.len() > 1;
    print_events(&first, many)?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let new = record.unseen(group, prefix, &mut seen);
        print_events(&new, many || seen.len() > 1)?;
    }
}

fn print_events(events: &[(String, crate::logs::Event)], prefixed: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for (stream, event) in events {
        if prefixed {
            writeln!(out, "{stream} | {}", event.message)?;
        } else {
            writeln!(out, "{}", event.message)?;
        }
    }
    out.flush()?;
    Ok(())
}

pub async fn gc(args: &GcArgs) -> Result<ExitCode> {
    let engine = args.engine.connect().await?;
    let sweep = if args.all {
        gc::Sweep::All
    } else {
        gc::Sweep::Orphans
    };
    let removed = gc::gc(&engine, sweep).await?;
    if args.json {
        println!("{}", serde_json::json!({ "removed": removed }));
    } else if removed.is_empty() {
        println!("nothing to remove");
    } else {
        println!(
            "removed {} container(s): {}",
            removed.len(),
            removed.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
