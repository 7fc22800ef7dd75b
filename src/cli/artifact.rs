//! The artifact commands: pack, unpack, validate, cache — running them and printing.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use super::progress;
use super::{CacheCommand, PackArgs, UnpackArgs, ValidateArgs};
use crate::artifact::{self as art, Cache, PackOptions};
use crate::error::{Error, Result};
use crate::framework::inspect::{self, Report};
use crate::units::format_bytes;

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

pub fn pack(args: &PackArgs) -> Result<ExitCode> {
    let meter = progress::meter();
    let options = PackOptions {
        exclude: args.exclude.clone(),
        level: args.level,
        meter: meter.clone(),
    };
    let line = progress::show(&meter);
    let packed = art::pack(&args.dir, &args.output, &options);
    drop(line);
    let packed = packed?;
    if args.json {
        print_json(&packed)?;
    } else {
        let mut out = io::stdout().lock();
        writeln!(
            out,
            "packed {} entries ({}) into {} ({})",
            packed.entries,
            format_bytes(packed.bytes),
            packed.output.display(),
            format_bytes(packed.compressed_bytes)
        )?;
        writeln!(out, "sha256 {}", packed.sha256)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn unpack(args: &UnpackArgs) -> Result<ExitCode> {
    let meter = progress::meter();
    let line = progress::show(&meter);
    let unpacked = art::unpack(&args.archive, &args.dest, &args.limits.limits(), meter);
    drop(line);
    let unpacked = unpacked?;
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            dest: &'a std::path::Path,
            #[serde(flatten)]
            unpacked: &'a art::Unpacked,
        }
        print_json(&Out {
            dest: &args.dest,
            unpacked: &unpacked,
        })?;
    } else {
        let mut out = io::stdout().lock();
        writeln!(
            out,
            "unpacked {} entries ({}) into {}",
            unpacked.entries,
            format_bytes(unpacked.bytes),
            args.dest.display()
        )?;
        writeln!(out, "sha256 {}", unpacked.sha256)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn validate(args: &ValidateArgs) -> Result<ExitCode> {
    let meter = progress::meter();
    let line = progress::show(&meter);
    let checked = inspect::check(
        &args.artifact,
        args.framework,
        &args.limits.limits(),
        &Cache::from_env()?.with_meter(meter),
    );
    drop(line);
    let checked = checked?;
    let report = checked.report;
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report)?;
    }
    Ok(if report.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_report(report: &Report) -> Result<()> {
    let mut out = io::stdout().lock();
    let from = report
        .detected_from
        .as_ref()
        .map(|p| format!(", detected from {p}"))
        .unwrap_or_default();
    writeln!(out, "{}", report.artifact.display())?;
    writeln!(
        out,
        "framework: {} ({}){from}",
        report.framework.name(),
        report.framework.title()
    )?;
    writeln!(
        out,
        "files: {} ({})",
        report.files,
        format_bytes(report.bytes)
    )?;
    if let Some(sha) = &report.sha256 {
        writeln!(out, "sha256: {sha}")?;
    }
    for model in &report.tensorflow_models {
        writeln!(
            out,
            "model '{}' version {} ({}/)",
            model.name, model.version, model.path
        )?;
        for sig in model.saved_model.iter().flat_map(|s| &s.signatures) {
            writeln!(out, "  {sig}")?;
        }
    }
    writeln!(out)?;
    for f in &report.findings {
        if f.code == "tf.signature" {
            continue; // shown with its model above
        }
        writeln!(
            out,
            "{}[{}] {}: {}",
            f.severity.as_str(),
            f.code,
            f.path,
            f.message
        )?;
        if let Some(fix) = &f.fix {
            writeln!(out, "  fix: {fix}")?;
        }
    }
    let c = report.counts;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    writeln!(
        out,
        "{}, {}, {}",
        plural(c.errors, "error"),
        plural(c.warnings, "warning"),
        plural(c.infos, "info")
    )?;
    Ok(())
}

pub fn cache(cmd: &CacheCommand) -> Result<ExitCode> {
    let cache = Cache::from_env()?;
    match cmd {
        CacheCommand::Ls { json } => {
            let entries = cache.list()?;
            if *json {
                return print_json(&entries).map(|()| ExitCode::SUCCESS);
            }
            let mut out = io::stdout().lock();
            if entries.is_empty() {
                writeln!(out, "cache {} is empty", cache.root().display())?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<14} {:>10} {:>8} {:>12}  SOURCE",
                "SHA256", "SIZE", "FILES", "LAST USED"
            )?;
            let now = unix_now();
            for e in &entries {
                writeln!(
                    out,
                    "{:<14} {:>10} {:>8} {:>12}  {}",
                    &e.sha256[..12],
                    format_bytes(e.unpacked_bytes),
                    e.entries,
                    ago(now.saturating_sub(e.last_used_unix)),
                    e.source.display()
                )?;
            }
            let total: u64 = entries.iter().map(|e| e.unpacked_bytes).sum();
            writeln!(
                out,
                "{} entries, {} in {}",
                entries.len(),
                format_bytes(total),
                cache.root().display()
            )?;
        }
        CacheCommand::Prune {
            all,
            older_than,
            json,
        } => {
            if !*all && older_than.is_none() {
                return Err(Error::Argument(
                    "say what to prune: --all, or --older-than AGE (e.g. --older-than 7d)".into(),
                ));
            }
            let pruned = cache.prune(*older_than)?;
            if *json {
                return print_json(&pruned).map(|()| ExitCode::SUCCESS);
            }
            writeln!(
                io::stdout().lock(),
                "removed {} entries, freed {}",
                pruned.removed.len(),
                format_bytes(pruned.freed_bytes)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ago(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}
