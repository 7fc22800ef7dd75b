//! What `serve`, `up` and `ci` do first and last as processes: bind the port, reach the
//! engine and clear away what runs that are gone left behind, and wait for Ctrl-C or
//! SIGTERM.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::runtime::removal::Removals;
use crate::runtime::{gc, Engine};

/// Binds the API port (failing fast when it is taken), connects to the engine (with a
/// registry: to the swarm it manages) and removes the containers of runs that are gone;
/// warns when the port is open beyond this machine.
pub async fn listen_and_connect(
    bind: &str,
    port: u16,
    swarm_registry: Option<&str>,
) -> Result<(TcpListener, Engine)> {
    let listener = TcpListener::bind((bind, port))
        .await
        .map_err(|source| Error::Listen {
            addr: format!("{bind}:{port}"),
            source,
        })?;
    if listener.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
        eprintln!(
            "warning: listening on {bind}, beyond this machine: the SageMaker API sagedock serves has no authentication, so anyone who reaches the port can start containers and invoke them"
        );
    }
    let engine = Engine::connect_to(swarm_registry).await?;
    let orphans = gc::gc(&engine, gc::Sweep::AtStart).await?;
    if !orphans.is_empty() {
        eprintln!(
            "removed {} container(s) left by runs that are gone: {}",
            orphans.len(),
            orphans.join(", ")
        );
    }
    Ok((listener, engine))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs the end of a run (`work`: removing its containers). When containers take long to
/// stop (Docker waits 30 s after SIGTERM when a container's process ignores it), says what
/// it waits for; a second Ctrl-C or SIGTERM kills and removes them at once, and `work`
/// then finishes without waiting.
pub async fn finish(work: impl Future<Output = ()>) {
    tokio::pin!(work);
    let announce = tokio::time::sleep(Duration::from_millis(500));
    tokio::pin!(announce);
    let (mut announced, mut forced) = (false, false);
    loop {
        tokio::select! {
            () = &mut work => return,
            () = &mut announce, if !announced => {
                announced = true;
                let pending = Removals::global().pending();
                if !pending.is_empty() {
                    eprintln!(
                        "waiting for {} container(s) to stop: {} (Docker kills a container 30 s after SIGTERM when its process ignores it); Ctrl-C again removes them at once",
                        pending.len(),
                        pending.join(", ")
                    );
                }
            }
            () = shutdown_signal(), if !forced => {
                forced = true;
                eprintln!("removing the containers at once");
                Removals::global().force().await;
            }
        }
    }
}
