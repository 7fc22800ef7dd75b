//! The engine's event stream, narrowed to the deaths of one owner's containers.
//!
//! One follower per owner: it asks the engine for `die` and `oom` events of containers
//! carrying the owner's label and passes each on at once; when the stream breaks (the
//! engine restarted, the socket closed), it reconnects with a growing pause and says
//! [`Death::Resync`], since deaths may have gone unseen meanwhile.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptions;
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;

use super::{labels, Engine};

/// What the follower says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Death {
    /// A container stopped: its id, and why as far as the engine says.
    Died { id: String, reason: String },
    /// Events may have been missed: look at every container again.
    Resync,
}

/// The engine's `actions` events (`start`, `die`, …) of `owner`'s containers, as they
/// happen; the stream ends when the connection to the engine does.
///
/// The actions are picked here, not by the engine's `event` filter: Podman's Docker API
/// (4.3) answers that filter with no event at all.
pub fn of_owner(
    engine: &Engine,
    owner: &str,
    actions: &[&str],
) -> impl Stream<Item = Result<EventMessage, bollard::errors::Error>> + Unpin {
    let filters: HashMap<String, Vec<String>> = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        (
            "label".to_string(),
            vec![format!("{}={owner}", labels::OWNER)],
        ),
    ]);
    let actions: Vec<String> = actions.iter().map(|a| (*a).to_string()).collect();
    engine
        .docker
        .events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .filter(move |event| {
            let wanted = match event {
                Ok(event) => event
                    .action
                    .as_deref()
                    .is_some_and(|a| actions.iter().any(|w| w == a)),
                Err(_) => true,
            };
            std::future::ready(wanted)
        })
}

/// Follows the deaths of `owner`'s containers for the life of the process.
/// On a swarm it says nothing: the manager's stream carries none of the other nodes'
/// containers, so a task's death is seen by its failing health checks.
pub fn follow(engine: Engine, owner: String) -> broadcast::Sender<Death> {
    let (tx, _) = broadcast::channel(1024);
    if engine.cluster.is_some() {
        return tx;
    }
    let sender = tx.clone();
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(100);
        let mut first = true;
        loop {
            if !first {
                let _ = tx.send(Death::Resync);
            }
            first = false;
            let mut stream = of_owner(&engine, &owner, &["die", "oom"]);
            let mut oom = std::collections::HashSet::new();
            while let Some(event) = stream.next().await {
                let Ok(event) = event else { break };
                pause = Duration::from_millis(100);
                let Some(actor) = event.actor else { continue };
                let Some(id) = actor.id else { continue };
                match event.action.as_deref() {
                    Some("oom") => {
                        oom.insert(id);
                    }
                    Some("die") => {
                        let attributes = actor.attributes.unwrap_or_default();
                        let code = attributes.get("exitCode").map_or("?", String::as_str);
                        let reason = if oom.remove(&id) {
                            format!("it was killed for using more memory than its instance type has (exit code {code})")
                        } else {
                            format!("it exited with code {code}")
                        };
                        let _ = tx.send(Death::Died { id, reason });
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    });
    sender
}
