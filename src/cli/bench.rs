//! `sagedock bench`: turns the arguments into a [`Load`], runs it (or searches for the
//! highest rate meeting an objective) and prints the report; a progress line on the
//! terminal while it runs.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::progress;
use super::report_file::{check_writable, write_atomically};
use super::BenchArgs;
use crate::bench::{self, html, Invocation, Live, Load, Report, Slo};
use crate::error::{Error, Result};
use crate::progress::Meter;
use crate::runtime::{self, gc, Engine};

pub async fn bench(args: &BenchArgs) -> Result<ExitCode> {
    let load = load(args)?;
    if let Some(path) = &args.html {
        check_writable("--html", path)?;
    }
    if let (true, Some(slo)) = (args.find_max, &args.slo) {
        return find_max(args, load, slo).await;
    }
    // The container is found first: a run is not spent before saying it cannot be.
    let direct = if args.compare_direct {
        Some(direct_load(args, &load).await?)
    } else {
        None
    };
    if !args.json {
        println!("{}", describe(&load));
    }
    let mut report = run_with_progress(load, "").await?;
    if let Some(direct) = direct {
        if !args.json {
            println!("then straight to the container: POST {}", direct.url);
        }
        report.direct = Some(Box::new(run_with_progress(direct, "direct ").await?));
    }
    let broken = report.broken_budgets(args.max_p50, args.max_p99);
    if let Some(path) = &args.html {
        write_page(path, &html::report_page(&report))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        report.render(&mut out, &broken)?;
        if let Some(direct) = &report.direct {
            writeln!(out, "straight to the container:")?;
            direct.render(&mut out, &[])?;
        }
        if let Some(path) = &args.html {
            writeln!(out, "report    {}", path.display())?;
        }
    }
    Ok(if report.passed(&broken) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--find-max`: the search, a line per step, the highest rate that met the objective.
async fn find_max(args: &BenchArgs, load: Load, slo: &Slo) -> Result<ExitCode> {
    if !args.json {
        println!(
            "{}\nfinding the highest rate that meets {slo}: a closed-loop probe, then steps of {}",
            describe(&load),
            humantime::format_duration(load.duration)
        );
    }
    let watch = Watch::start("");
    let load = Load {
        live: watch.as_ref().map(|w| w.live.clone()),
        ..load
    };
    let json = args.json;
    let each = |step: &bench::find_max::Step| {
        if json {
            return;
        }
        let line = format!(
            "rate {:>9.1}/s  2xx {:>9.1}/s  p50 {}  p99 {}  {}",
            step.rate,
            step.throughput,
            ms(step.p50),
            ms(step.p99),
            step.why.as_deref().unwrap_or("met")
        );
        match watch.as_ref().and_then(|w| w.line.as_ref()) {
            Some(line_above) => line_above.println(line),
            None => println!("{line}"),
        }
    };
    let search = bench::find_max(load, slo, each).await;
    drop(watch);
    let search = search?;
    if let Some(path) = &args.html {
        write_page(path, &html::search_page(&search))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &search).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        match search.max_rate {
            Some(rate) => writeln!(out, "max rate  {rate:.1} requests/s meets {slo}")?,
            None => writeln!(out, "max rate  none: no rate tried met {slo}")?,
        }
        if let Some(path) = &args.html {
            writeln!(out, "report    {}", path.display())?;
        }
    }
    Ok(if search.max_rate.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.2} ms"))
}

/// A load's running totals said on the progress line twice a second, while a terminal
/// shows it.
struct Watch {
    live: Arc<Live>,
    line: Option<progress::Line>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// `None` when no progress is drawn.
    fn start(prefix: &str) -> Option<Watch> {
        let meter = progress::meter()?;
        let live = Arc::new(Live::default());
        let line = progress::show(&Some(meter.clone()));
        let ticker = tokio::spawn(tick(live.clone(), meter, prefix.to_string()));
        Some(Watch { live, line, ticker })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

async fn tick(live: Arc<Live>, meter: Arc<Meter>, prefix: String) {
    let mut last = live.read();
    let mut then = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = live.read();
        let rate = now.ok.saturating_sub(last.ok) as f64 / then.elapsed().as_secs_f64();
        then = std::time::Instant::now();
        meter.note(format!(
            "{prefix}{} answered, {rate:.0}/s  p50 {}  p99 {}  {} failed",
            now.ok,
            ms(now.p50),
            ms(now.p99),
            now.failed
        ));
        last = now;
    }
}

/// Runs `load` with a progress line on the terminal.
async fn run_with_progress(load: Load, prefix: &str) -> Result<Report> {
    let watch = Watch::start(prefix);
    let report = bench::run(Load {
        live: watch.as_ref().map(|w| w.live.clone()),
        ..load
    })
    .await;
    drop(watch);
    Ok(report?)
}

fn write_page(path: &Path, page: &str) -> Result<()> {
    write_atomically(path, page.as_bytes())
}

/// The same load, straight to the serving container of the endpoint's first instance
/// (of --target-variant's, when given) at the address sagedock itself sends to.
async fn direct_load(args: &BenchArgs, load: &Load) -> Result<Load> {
    let Some(endpoint) = &args.endpoint else {
        return Err(Error::Argument("--compare-direct needs --endpoint".into()));
    };
    let engine = Engine::connect().await?;
    let found = gc::list(&engine).await?;
    let mut candidates: Vec<&gc::Managed> = found
        .iter()
        .filter(|c| c.endpoint == *endpoint && c.state == "running" && c.owner_alive)
        .filter(|c| args.target_variant.as_ref().is_none_or(|v| c.variant == *v))
        .collect();
    candidates.sort_by(|a, b| {
        (&a.variant, &a.instance, &a.name).cmp(&(&b.variant, &b.instance, &b.name))
    });
    let Some(first) = candidates.first() else {
        return Err(Error::Argument(format!(
            "--compare-direct: no running container of endpoint {endpoint}{} (is it InService? `sagedock ps` lists them)",
            args.target_variant
                .as_ref()
                .map(|v| format!(" variant {v}"))
                .unwrap_or_default()
        )));
    };
    if candidates
        .iter()
        .any(|c| c.instance == first.instance && c.position().unwrap_or(0) > 0)
    {
        return Err(Error::Argument(format!(
            "--compare-direct: endpoint {endpoint}'s instances run a pipeline of containers; there is no one container to send the whole request to"
        )));
    }
    let info = engine
        .docker
        .inspect_container(&first.id, None)
        .await
        .map_err(|e| Error::Argument(format!("--compare-direct: {}: {e}", first.name)))?;
    let (address, _) = runtime::launch::address(
        &engine,
        &info,
        false,
        &first.name,
        runtime::spec::SERVING_PORT,
    )?;
    let url = format!("http://{address}/invocations");
    let headers = args
        .request
        .invocation()
        .headers()
        .map_err(|e| Error::Argument(e.to_string()))?;
    Ok(Load {
        url: url
            .parse()
            .map_err(|e| Error::Argument(format!("{url}: {e}")))?,
        headers,
        ..load.clone()
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
    let bodies = bodies(args)?;
    let headers = Invocation {
        target_variant: args.target_variant.as_deref(),
        target_model: args.target_model.as_deref(),
        ..args.request.invocation()
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
        bodies,
        connections: args.concurrency,
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        timeout: args.timeout,
        live: None,
    })
}

/// The bodies to send in turn: one (a file, inline text, or none), every file of a
/// folder, or every line of a JSON Lines file.
fn bodies(args: &BenchArgs) -> Result<Vec<Bytes>> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    if let Some(path) = &args.body {
        return Ok(vec![Bytes::from(read(path)?)]);
    }
    if let Some(text) = &args.body_text {
        return Ok(vec![Bytes::from(text.clone())]);
    }
    if let Some(dir) = &args.bodies {
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
            path: dir.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::Read {
                path: dir.clone(),
                source,
            })?;
            // Regular files only: a folder or a link out of DIR is not a body.
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                files.push(entry.path());
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(Error::Argument(format!(
                "--bodies {}: the folder has no files; put one request body in each file",
                dir.display()
            )));
        }
        return files.iter().map(|f| Ok(Bytes::from(read(f)?))).collect();
    }
    if let Some(path) = &args.jsonl {
        let text = read(path)?;
        let lines: Vec<Bytes> = text
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(Bytes::copy_from_slice)
            .collect();
        if lines.is_empty() {
            return Err(Error::Argument(format!(
                "--jsonl {}: the file has no lines; write one request body per line",
                path.display()
            )));
        }
        return Ok(lines);
    }
    Ok(vec![Bytes::new()])
}

fn describe(load: &Load) -> String {
    let schedule = match load.rate {
        Some(rate) => format!("open loop at {rate} requests/s"),
        None => "closed loop".to_string(),
    };
    let bodies = match load.bodies.as_slice() {
        [one] => format!("{} bytes", one.len()),
        many => format!("{} bodies in turn", many.len()),
    };
    format!(
        "POST {} ({bodies}): {schedule}, {} connection(s), {} measured after a {} warm-up",
        load.url,
        load.connections,
        humantime::format_duration(load.duration),
        humantime::format_duration(load.warmup),
    )
}
