//! `sagedock ci SPEC`: runs the spec's checks ([`crate::ci::runner`]), prints each as it
//! ends, and writes the JUnit report.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::process::{finish, listen_and_connect, shutdown_signal};
use super::report_file::{check_writable, write_atomically};
use super::CiArgs;
use crate::artifact::Cache;
use crate::ci::junit::{self, Outcome, Suite};
use crate::ci::runner::{Progress, Runner};
use crate::ci::Spec;
use crate::deploy::{DeployOptions, Deployer};
use crate::endpoint::Router;
use crate::error::Result;
use crate::runtime::owner;
use crate::server::{self, App};
use crate::storage::Storage;

const ACCOUNT: &str = "123456789012";

pub async fn ci(args: &CiArgs) -> Result<ExitCode> {
    let spec = Spec::load(&args.spec)?;
    if let Some(junit) = &args.junit {
        check_writable("--junit", junit)?;
    }
    let (listener, engine) = listen_and_connect("127.0.0.1", 0, None).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = Arc::new(Router::new(ACCOUNT, &args.region));
    let server = tokio::spawn(server::serve(
        listener,
        App::new(router.clone(), None),
        server::Limits::default(),
    ));
    let options = DeployOptions::with_capacity(args.capacity.capacity(engine.memory_bytes));
    let deployer = Arc::new(Deployer::new(
        engine,
        Cache::from_env()?,
        Storage::None,
        owner::current(),
        args.region.clone(),
        options,
    ));
    let runner = Runner::new(deployer.clone(), router, base, args.limits.limits());
    let mut print = |progress: Progress| match progress {
        Progress::Endpoint { name, image } => println!("endpoint {name} ({image})"),
        Progress::Case(case) => println!("{}", line(&case.name, case.time, &case.outcome)),
    };
    let suites = tokio::select! {
        suites = runner.run(&spec, &mut print) => suites,
        () = shutdown_signal() => {
            eprintln!("interrupted: removing containers");
            server.abort();
            finish(deployer.shut_down()).await;
            return Ok(ExitCode::from(130));
        }
    };
    server.abort();
    finish(deployer.shut_down()).await;
    let count = |f: fn(&Suite) -> usize| suites.iter().map(f).sum::<usize>();
    let total = count(|s| s.cases.len());
    let (failed, skipped) = (count(Suite::failures), count(Suite::skipped));
    println!(
        "{total} checks: {} passed, {failed} failed, {skipped} skipped",
        total - failed - skipped
    );
    if let Some(path) = &args.junit {
        write_atomically(path, junit::render(&suites).as_bytes())?;
        println!("JUnit report: {}", path.display());
    }
    Ok(if failed == 0 && skipped == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A check's line: `PASS name (time)`, `FAIL name: why`, `SKIP name: why`.
fn line(name: &str, time: Duration, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Passed if time < Duration::from_secs(1) => {
            format!("  PASS {name} ({:.1} ms)", time.as_secs_f64() * 1000.0)
        }
        Outcome::Passed => format!("  PASS {name} ({:.2} s)", time.as_secs_f64()),
        Outcome::Failed { message, .. } => format!("  FAIL {name}: {message}"),
        Outcome::Skipped(why) => format!("  SKIP {name}: {why}"),
    }
}
