//! Fills the log record from the engine: every container of this sagedock (its owner
//! label) that starts, or is running when sagedock starts (re-adopted endpoints), has its
//! output followed to the end and appended to its stream with the engine's timestamps.
//!
//! A follow that breaks (the engine restarted) is taken up again from the last recorded
//! time, and lines at or before that time are not written twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;

use super::{
    endpoint_group, endpoint_stream, epoch_millis, transform_stream, Event, LogRecord,
    TRANSFORM_JOBS_GROUP,
};
use crate::runtime::removal::Removals;
use crate::runtime::{events, gc, labels, Engine};
use crate::sync::locked;

/// Starts collecting the output of `owner`'s containers into `record`, for the life of
/// the process.
pub fn start(engine: Engine, owner: String, record: Arc<LogRecord>) {
    let following = Arc::new(Mutex::new(HashSet::new()));
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(100);
        loop {
            // Subscribe first, then list: a container starting in between is seen twice
            // (and followed once), never missed.
            // A swarm's manager has no events of its other nodes' containers: its
            // services are listed again each second instead.
            let on_swarm = engine.cluster.is_some();
            let events = (!on_swarm).then(|| events::of_owner(&engine, &owner, &["start"]));
            if let Ok(containers) = gc::list(&engine).await {
                for c in containers {
                    let ours = c.labels.get(labels::OWNER) == Some(&owner);
                    if ours && c.state == "running" {
                        follow(&engine, &record, &following, c.id, c.name, &c.labels);
                    }
                }
            }
            let Some(mut events) = events else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            while let Some(event) = events.next().await {
                let Ok(event) = event else { break };
                pause = Duration::from_millis(100);
                let Some(actor) = event.actor else { continue };
                let (Some(id), Some(attributes)) = (actor.id, actor.attributes) else {
                    continue;
                };
                let name = attributes.get("name").cloned().unwrap_or_default();
                follow(&engine, &record, &following, id, name, &attributes);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    });
}

/// Where a container's output goes, from its labels: None for containers that are not
/// an endpoint's or a transform job's (a training job follows its own).
pub fn destination(name: &str, labels: &HashMap<String, String>) -> Option<(String, String)> {
    if let Some(job) = labels.get(labels::TRANSFORM_JOB).filter(|j| !j.is_empty()) {
        return Some((
            TRANSFORM_JOBS_GROUP.to_string(),
            transform_stream(job, name),
        ));
    }
    let endpoint = labels.get(labels::ENDPOINT).filter(|e| !e.is_empty())?;
    let variant = labels.get(labels::VARIANT).map_or("", String::as_str);
    Some((endpoint_group(endpoint), endpoint_stream(variant, name)))
}

/// Follows one container (once, however often it is named) until its output ends.
fn follow(
    engine: &Engine,
    record: &Arc<LogRecord>,
    following: &Arc<Mutex<HashSet<String>>>,
    id: String,
    name: String,
    labels: &HashMap<String, String>,
) {
    let Some((group, stream)) = destination(name.trim_start_matches('/'), labels) else {
        return;
    };
    if !locked(following).insert(id.clone()) {
        return;
    }
    let (engine, record, following) = (engine.clone(), record.clone(), following.clone());
    tokio::spawn(async move {
        copy(&engine, &id, &record, &group, &stream, |_| {}).await;
        locked(&following).remove(&id);
    });
}

/// Copies one container's output into `stream` of `group` until the output ends (the
/// container stopped), calling `each` with every batch of lines as it is recorded. Lines
/// at or before the stream's last recorded time are not written twice (a follow taken up
/// again after the engine restarted).
pub async fn copy(
    engine: &Engine,
    id: &str,
    record: &LogRecord,
    group: &str,
    stream: &str,
    mut each: impl FnMut(&[Event]),
) {
    let after = record.last_timestamp(group, stream).unwrap_or(i64::MIN);
    let since = i32::try_from(after.max(0) / 1000).unwrap_or(0);
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .follow(true)
        .timestamps(true)
        .since(since)
        .build();
    // Registered before the first read: a removal waits for the last line.
    let _reading = Removals::global().reading(id);
    let mut output = engine.logs(id, options);
    let mut pending = String::new();
    let mut write = |events: Vec<Event>| {
        if let Err(e) = record.append(group, stream, &events) {
            tracing::warn!(%group, %stream, error = %e, "could not record container output");
        }
        each(&events);
    };
    while let Some(Ok(item)) = output.next().await {
        let (LogOutput::StdOut { message }
        | LogOutput::StdErr { message }
        | LogOutput::Console { message }) = item
        else {
            continue;
        };
        pending.push_str(&String::from_utf8_lossy(&message));
        let Some(end) = pending.rfind('\n') else {
            continue;
        };
        let events: Vec<Event> = pending[..end]
            .lines()
            .map(parse_line)
            .filter(|e| e.timestamp > after)
            .collect();
        pending.drain(..=end);
        write(events);
    }
    if !pending.is_empty() {
        write(vec![parse_line(&pending)]);
    }
}

/// A line as the engine gives it with timestamps on: `2026-11-30T09:00:00.123456789Z text`
/// (a line without one is stamped now).
fn parse_line(line: &str) -> Event {
    let stamped = line.split_once(' ').and_then(|(stamp, message)| {
        let time = humantime::parse_rfc3339_weak(stamp).ok()?;
        Some((time, message))
    });
    let (time, message) = stamped.unwrap_or((std::time::SystemTime::now(), line));
    Event {
        timestamp: epoch_millis(time),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_lines_keep_their_timestamps() {
        let e = parse_line("2026-11-30T09:00:01.250000000Z Model loaded in 2 s");
        assert_eq!(e.timestamp, 1_796_029_201_250);
        assert_eq!(e.message, "Model loaded in 2 s");
        let plain = parse_line("no timestamp here");
        assert_eq!(plain.message, "no timestamp here");
        assert!(plain.timestamp > 1_700_000_000_000);
    }

    #[test]
    fn only_endpoint_containers_have_a_destination() {
        let labels = HashMap::from([
            (labels::ENDPOINT.to_string(), "ep".to_string()),
            (labels::VARIANT.to_string(), "AllTraffic".to_string()),
        ]);
        assert_eq!(
            destination("sagedock-ep-AllTraffic-g1-0-r", &labels),
            Some((
                "/aws/sagemaker/Endpoints/ep".to_string(),
                "AllTraffic/sagedock-ep-AllTraffic-g1-0-r".to_string()
            ))
        );
        assert_eq!(destination("x", &HashMap::new()), None);
    }
}
