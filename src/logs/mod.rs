//! CloudWatch Logs as sagedock keeps them: every managed container's output, line by line
//! with the time the engine stamped on it, in the log groups and streams SageMaker names
//! (`/aws/sagemaker/Endpoints/<endpoint>`, stream `<variant>/<container>`;
//! `/aws/sagemaker/TrainingJobs`, stream `<job>/algo-<n>-<epoch seconds>`), kept on disk
//! so that a container that is gone (replaced, deleted, a finished job) keeps its log.
//!
//! Owns: the record ([`LogRecord`]: one file per stream, `<data-dir>/logs/<group>/<stream>`
//! with both names escaped into one safe file name each, so no name a caller sends can
//! reach another file), the collector that fills it from the engine ([`collect`]), and
//! the read side of the Logs API over it ([`api`]).
//!
//! Does not: take PutLogEvents (only containers write), or keep retention policies.

pub mod api;
pub mod collect;

use std::io::Write;
use std::path::{Path, PathBuf};

/// The log group of an endpoint.
pub fn endpoint_group(endpoint: &str) -> String {
    format!("/aws/sagemaker/Endpoints/{endpoint}")
}

/// The log stream of one container of an endpoint's variant.
pub fn endpoint_stream(variant: &str, container: &str) -> String {
    format!("{variant}/{container}")
}

/// The log group of every training job.
pub const TRAINING_JOBS_GROUP: &str = "/aws/sagemaker/TrainingJobs";

/// The log stream of one host of a training job: `<job>/algo-<n>-<epoch seconds>`, as
/// SageMaker names them (the SageMaker Python SDK finds a job's streams by the `<job>/`
/// prefix).
pub fn training_stream(job: &str, host: &str, started: std::time::SystemTime) -> String {
    let seconds = started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{job}/{host}-{seconds}")
}

/// The log group of every transform job.
pub const TRANSFORM_JOBS_GROUP: &str = "/aws/sagemaker/TransformJobs";

/// The log stream of one container of a transform job: `<job>/<container>` (the SageMaker
/// Python SDK finds a job's streams by the `<job>/` prefix).
pub fn transform_stream(job: &str, container: &str) -> String {
    format!("{job}/{container}")
}

/// The stream of a transform job's own lines (its parameters, each object's progress and
/// errors), as SageMaker's `data-log`.
pub fn transform_data_stream(job: &str) -> String {
    format!("{job}/data-log")
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds since the epoch, as the engine stamped the line.
    pub timestamp: i64,
    pub message: String,
}

/// What is known of a stream without reading it whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub name: String,
    pub first_event: Option<i64>,
    pub last_event: Option<i64>,
    /// When the stream's file was made (milliseconds since the epoch).
    pub created: i64,
    pub stored_bytes: u64,
}

/// The record: a folder of log groups.
#[derive(Debug)]
pub struct LogRecord {
    root: PathBuf,
}

impl LogRecord {
    /// The record under `root`, made if missing.
    pub fn open(root: &Path) -> std::io::Result<LogRecord> {
        std::fs::create_dir_all(root)?;
        Ok(LogRecord {
            root: root.to_path_buf(),
        })
    }

    fn group_dir(&self, group: &str) -> PathBuf {
        self.root.join(escape(group))
    }

    fn stream_file(&self, group: &str, stream: &str) -> PathBuf {
        self.group_dir(group).join(escape(stream))
    }

    /// The record under `root` if there is one (a reader makes nothing).
    pub fn existing(root: &Path) -> Option<LogRecord> {
        root.is_dir().then(|| LogRecord {
            root: root.to_path_buf(),
        })
    }

    /// Every event of a group's streams whose names begin with `prefix` (all of them for
    /// `""`; a training job's are `<job>/`) not yet `seen` (how far each stream has been
    /// read, in bytes; updated), in time order with their stream's name. Only what was
    /// appended since is read.
    pub fn unseen(
        &self,
        group: &str,
        prefix: &str,
        seen: &mut std::collections::HashMap<String, u64>,
    ) -> Vec<(String, Event)> {
        let mut out = Vec::new();
        let names = self.stream_names(group).unwrap_or_default();
        for name in names.into_iter().filter(|n| n.starts_with(prefix)) {
            let done = seen.entry(name.clone()).or_insert(0);
            let Some((events, read_to)) = self.read_from(group, &name, *done) else {
                continue;
            };
            *done = read_to;
            out.extend(events.into_iter().map(|e| (name.clone(), e)));
        }
        out.sort_by(|a, b| (a.1.timestamp, &a.0).cmp(&(b.1.timestamp, &b.0)));
        out
    }

    /// Adds lines at the end of a stream (made with its group if missing).
    pub fn append(&self, group: &str, stream: &str, events: &[Event]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(self.group_dir(group))?;
        let mut text = String::new();
        for event in events {
            text.push_str(&event.timestamp.to_string());
            text.push(' ');
            text.push_str(&event.message.replace(['\n', '\r'], " "));
            text.push('\n');
        }
        // One write per batch, in append mode: a reader sees whole lines or none.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stream_file(group, stream))?
            .write_all(text.as_bytes())
    }

    /// The groups, by name.
    pub fn groups(&self) -> Vec<(String, i64)> {
        let mut groups: Vec<(String, i64)> = entries(&self.root)
            .filter(|(_, meta)| meta.is_dir())
            .map(|(name, meta)| (name, millis(&meta)))
            .collect();
        groups.sort();
        groups
    }

    /// The streams of a group, by name; None when the group does not exist.
    pub fn streams(&self, group: &str) -> Option<Vec<StreamInfo>> {
        let dir = self.group_dir(group);
        if !dir.is_dir() {
            return None;
        }
        let mut streams: Vec<StreamInfo> = stream_files(&dir)
            .map(|(name, meta)| {
                let events = self.read(group, &name).unwrap_or_default();
                StreamInfo {
                    first_event: events.first().map(|e| e.timestamp),
                    last_event: events.last().map(|e| e.timestamp),
                    created: millis(&meta),
                    stored_bytes: meta.len(),
                    name,
                }
            })
            .collect();
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        Some(streams)
    }

    /// The names of a group's streams; None when the group does not exist.
    fn stream_names(&self, group: &str) -> Option<Vec<String>> {
        let dir = self.group_dir(group);
        dir.is_dir()
            .then(|| stream_files(&dir).map(|(name, _)| name).collect())
    }

    /// A stream's events in order; None when the stream does not exist.
    pub fn read(&self, group: &str, stream: &str) -> Option<Vec<Event>> {
        self.read_from(group, stream, 0).map(|(events, _)| events)
    }

    /// A stream's events from byte `offset` on, and the offset read up to; None when the
    /// stream does not exist.
    fn read_from(&self, group: &str, stream: &str, offset: u64) -> Option<(Vec<Event>, u64)> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(self.stream_file(group, stream)).ok()?;
        file.seek(SeekFrom::Start(offset)).ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        // A line still being written has no newline yet: it is left for the next read.
        let complete = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |end| end + 1);
        let text = String::from_utf8_lossy(&bytes[..complete]);
        let events = text
            .lines()
            .filter_map(|line| {
                let (time, message) = line.split_once(' ')?;
                Some(Event {
                    timestamp: time.parse().ok()?,
                    message: message.to_string(),
                })
            })
            .collect();
        Some((events, offset + complete as u64))
    }

    /// The time of a stream's last event.
    pub fn last_timestamp(&self, group: &str, stream: &str) -> Option<i64> {
        self.read(group, stream)?.last().map(|e| e.timestamp)
    }
}

/// A group folder's stream files as (stream name, metadata).
fn stream_files(dir: &Path) -> impl Iterator<Item = (String, std::fs::Metadata)> {
    entries(dir).filter(|(_, meta)| meta.is_file())
}

/// A folder's entries as (unescaped name, metadata); names that are not sagedock's
/// escapes are passed by.
fn entries(dir: &Path) -> impl Iterator<Item = (String, std::fs::Metadata)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = unescape(entry.file_name().to_str()?)?;
            Some((name, entry.metadata().ok()?))
        })
}

fn millis(meta: &std::fs::Metadata) -> i64 {
    meta.modified().map_or(0, epoch_millis)
}

/// A time as CloudWatch gives it: milliseconds since the epoch.
pub fn epoch_millis(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A name as one file name: letters, digits, `-` and `_` stay, every other byte is `%XX`,
/// so the result has no `/`, is never `.` or `..`, and never starts with `.`.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// The name an escaped file name stands for.
fn unescape(file: &str) -> Option<String> {
    if file == "%" {
        return Some(String::new());
    }
    let bytes = file.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(timestamp: i64, message: &str) -> Event {
        Event {
            timestamp,
            message: message.into(),
        }
    }

    #[test]
    fn names_become_single_safe_file_names_and_back() {
        for name in [
            "/aws/sagemaker/Endpoints/ep",
            "AllTraffic/c-1",
            "..",
            ".",
            "",
            "a%2Fb",
            "ü",
        ] {
            let file = escape(name);
            assert!(
                !file.contains('/') && !file.starts_with('.'),
                "{name} -> {file}"
            );
            assert_eq!(unescape(&file).as_deref(), Some(name));
        }
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("%4"), None);
    }

    #[test]
    fn appended_lines_read_back_in_order_and_streams_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let record = LogRecord::open(dir.path()).unwrap();
        let group = endpoint_group("ep");
        record
            .append(
                &group,
                "AllTraffic/c1",
                &[event(1, "one"), event(2, "two words")],
            )
            .unwrap();
        record
            .append(&group, "AllTraffic/c1", &[event(3, "line\nbreak")])
            .unwrap();
        let events = record.read(&group, "AllTraffic/c1").unwrap();
        assert_eq!(
            events,
            [
                event(1, "one"),
                event(2, "two words"),
                event(3, "line break")
            ]
        );
        assert_eq!(record.read(&group, "AllTraffic/c2"), None);
        let streams = record.streams(&group).unwrap();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].name, "AllTraffic/c1");
        assert_eq!(
            (streams[0].first_event, streams[0].last_event),
            (Some(1), Some(3))
        );
        assert_eq!(record.groups()[0].0, group);
        assert!(record.streams("/aws/sagemaker/Endpoints/other").is_none());
        // Names that climb out stay inside: they are one escaped file name.
        assert!(record.read("..", "../../etc/passwd").is_none());
    }

    #[test]
    fn unseen_events_are_read_from_where_the_last_read_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let record = LogRecord::open(dir.path()).unwrap();
        let mut seen = std::collections::HashMap::new();
        record.append("g", "a", &[event(1, "one")]).unwrap();
        record.append("g", "b", &[event(2, "two")]).unwrap();
        let first: Vec<_> = record
            .unseen("g", "", &mut seen)
            .into_iter()
            .map(|(s, e)| (s, e.message))
            .collect();
        assert_eq!(
            first,
            [
                ("a".to_string(), "one".to_string()),
                ("b".to_string(), "two".to_string())
            ]
        );
        assert!(record.unseen("g", "", &mut seen).is_empty());
        record.append("g", "a", &[event(3, "three")]).unwrap();
        let next = record.unseen("g", "", &mut seen);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].1.message, "three");
    }

    #[test]
    fn a_line_being_written_is_not_read_half() {
        let dir = tempfile::tempdir().unwrap();
        let record = LogRecord::open(dir.path()).unwrap();
        record.append("g", "s", &[event(1, "whole")]).unwrap();
        let file = record.stream_file("g", "s");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"2 hal")
            .unwrap();
        assert_eq!(record.read("g", "s").unwrap(), [event(1, "whole")]);
    }
}
