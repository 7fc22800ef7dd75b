//! The read side of the CloudWatch Logs API over the record: DescribeLogGroups,
//! DescribeLogStreams, GetLogEvents and FilterLogEvents, in the Logs JSON 1.1 protocol
//! (`X-Amz-Target: Logs_20140328.<Operation>`), with its pagination tokens and errors.
//!
//! Does not: write (PutLogEvents and the rest answer UnknownOperationException, naming
//! what sagedock implements).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Event, LogRecord, StreamInfo};

/// The most events one call returns (GetLogEvents' and FilterLogEvents' default).
const MAX_EVENTS: usize = 10_000;
/// The most groups or streams one call returns (the APIs' default).
const MAX_LISTED: usize = 50;

/// A Logs API error: its type, HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsError {
    pub kind: &'static str,
    pub status: u16,
    pub message: String,
}

impl LogsError {
    /// An error of `kind` (the API's `__type`): the caller's (400), but for
    /// ServiceUnavailableException (500).
    pub fn new(kind: &'static str, message: impl Into<String>) -> LogsError {
        let status = if kind == "ServiceUnavailableException" {
            500
        } else {
            400
        };
        LogsError {
            kind,
            status,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> LogsError {
        LogsError::new("InvalidParameterException", message)
    }

    fn not_found(message: &str) -> LogsError {
        LogsError::new("ResourceNotFoundException", message)
    }

    /// The error's JSON body.
    pub fn body(&self) -> Value {
        json!({"__type": self.kind, "message": self.message})
    }
}

/// Answers one operation (`target` is the X-Amz-Target header) as the JSON to return.
pub fn handle(
    record: &LogRecord,
    target: &str,
    body: &[u8],
    account: &str,
    region: &str,
) -> Result<Value, LogsError> {
    let operation = target.strip_prefix("Logs_20140328.").unwrap_or(target);
    let arn = |group: &str| format!("arn:aws:logs:{region}:{account}:log-group:{group}");
    match operation {
        "DescribeLogGroups" => describe_groups(record, parse(body)?, &arn),
        "DescribeLogStreams" => describe_streams(record, parse(body)?, &arn),
        "GetLogEvents" => get_events(record, parse(body)?),
        "FilterLogEvents" => filter_events(record, parse(body)?),
        other => Err(LogsError::new("UnknownOperationException", format!("sagedock's CloudWatch Logs implements DescribeLogGroups, DescribeLogStreams, GetLogEvents and FilterLogEvents (the read side, fed from the containers' output), not {other}."))),
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, LogsError> {
    let body = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| {
        LogsError::new(
            "SerializationException",
            format!("The request body is not the operation's input: {e}"),
        )
    })
}

/// A log group named by name or by ARN (`logGroupIdentifier`).
fn group_name(name: Option<String>, identifier: Option<String>) -> Result<String, LogsError> {
    match (name, identifier) {
        (Some(name), None) => Ok(name),
        (None, Some(id)) => Ok(id
            .split_once(":log-group:")
            .map_or(id.clone(), |(_, g)| g.trim_end_matches(":*").to_string())),
        (Some(_), Some(_)) => Err(LogsError::invalid(
            "LogGroupName and LogGroupIdentifier are mutually exclusive parameters.",
        )),
        (None, None) => Err(LogsError::invalid(
            "Either LogGroupName or LogGroupIdentifier must be provided.",
        )),
    }
}

/// An offset token of the form `<prefix><n>`.
fn offset(token: Option<&str>, prefix: &str) -> Result<usize, LogsError> {
    match token {
        None => Ok(0),
        Some(t) => t
            .strip_prefix(prefix)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| LogsError::invalid("The specified nextToken is invalid.")),
    }
}

fn limit(asked: Option<i64>, max: usize) -> Result<usize, LogsError> {
    match asked {
        None => Ok(max),
        Some(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(max).min(max)),
        Some(n) => Err(LogsError::invalid(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeGroups {
    log_group_name_prefix: Option<String>,
    log_group_name_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

fn describe_groups(
    record: &LogRecord,
    input: DescribeGroups,
    arn: &dyn Fn(&str) -> String,
) -> Result<Value, LogsError> {
    let start = offset(input.next_token.as_deref(), "g/")?;
    let limit = limit(input.limit, MAX_LISTED)?;
    let prefix = input.log_group_name_prefix.unwrap_or_default();
    let pattern = input.log_group_name_pattern.unwrap_or_default();
    let groups: Vec<(String, i64)> = record
        .groups()
        .into_iter()
        .filter(|(name, _)| name.starts_with(&prefix) && name.contains(&pattern))
        .collect();
    let page: Vec<Value> = groups
        .iter()
        .skip(start)
        .take(limit)
        .map(|(name, created)| {
            let stored: u64 = record
                .streams(name)
                .unwrap_or_default()
                .iter()
                .map(|s| s.stored_bytes)
                .sum();
            json!({
                "logGroupName": name,
                "creationTime": created,
                "metricFilterCount": 0,
                "arn": format!("{}:*", arn(name)),
                "logGroupArn": arn(name),
                "storedBytes": stored,
                "logGroupClass": "STANDARD",
            })
        })
        .collect();
    let mut out = json!({ "logGroups": page });
    if start + limit < groups.len() {
        out["nextToken"] = json!(format!("g/{}", start + limit));
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeStreams {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    next_token: Option<String>,
    limit: Option<i64>,
}

fn describe_streams(
    record: &LogRecord,
    input: DescribeStreams,
    arn: &dyn Fn(&str) -> String,
) -> Result<Value, LogsError> {
    let group = group_name(input.log_group_name, input.log_group_identifier)?;
    let start = offset(input.next_token.as_deref(), "s/")?;
    let limit = limit(input.limit, MAX_LISTED)?;
    let mut streams = record
        .streams(&group)
        .ok_or_else(|| LogsError::not_found("The specified log group does not exist."))?;
    let prefix = input.log_stream_name_prefix.unwrap_or_default();
    match input.order_by.as_deref() {
        None | Some("LogStreamName") => {}
        Some("LastEventTime") if prefix.is_empty() => {
            streams.sort_by_key(|s| (s.last_event.unwrap_or(s.created), s.name.clone()));
        }
        Some("LastEventTime") => {
            return Err(LogsError::invalid(
                "Cannot order by LastEventTime with a logStreamNamePrefix.",
            ))
        }
        Some(other) => {
            return Err(LogsError::invalid(format!(
                "1 validation error detected: Value '{other}' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
            )))
        }
    }
    streams.retain(|s| s.name.starts_with(&prefix));
    if input.descending == Some(true) {
        streams.reverse();
    }
    let page: Vec<Value> = streams
        .iter()
        .skip(start)
        .take(limit)
        .map(|s| stream_json(s, &format!("{}:log-stream:{}", arn(&group), s.name)))
        .collect();
    let mut out = json!({ "logStreams": page });
    if start + limit < streams.len() {
        out["nextToken"] = json!(format!("s/{}", start + limit));
    }
    Ok(out)
}

fn stream_json(s: &StreamInfo, arn: &str) -> Value {
    let mut v = json!({
        "logStreamName": s.name,
        "creationTime": s.created.min(s.first_event.unwrap_or(s.created)),
        "arn": arn,
        "storedBytes": s.stored_bytes,
    });
    if let (Some(first), Some(last)) = (s.first_event, s.last_event) {
        v["firstEventTimestamp"] = json!(first);
        v["lastEventTimestamp"] = json!(last);
        v["lastIngestionTime"] = json!(last);
    }
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetEvents {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name: String,
    start_time: Option<i64>,
    end_time: Option<i64>,
    next_token: Option<String>,
    limit: Option<i64>,
    start_from_head: Option<bool>,
}

/// GetLogEvents: tokens are positions in the stream's events within the time range,
/// `f/N` reading forward from N and `b/N` backward from N; at either end the token given
/// comes back, as CloudWatch's does.
fn get_events(record: &LogRecord, input: GetEvents) -> Result<Value, LogsError> {
    let group = group_name(input.log_group_name, input.log_group_identifier)?;
    let limit = limit(input.limit, MAX_EVENTS)?;
    let all = record.read(&group, &input.log_stream_name).ok_or_else(|| {
        if record.streams(&group).is_none() {
            LogsError::not_found("The specified log group does not exist.")
        } else {
            LogsError::not_found("The specified log stream does not exist.")
        }
    })?;
    let events: Vec<&Event> = all
        .iter()
        .filter(|e| in_range(e.timestamp, input.start_time, input.end_time))
        .collect();
    let (start, end) = match input.next_token.as_deref() {
        Some(t) if t.starts_with("f/") => {
            let from = offset(Some(t), "f/")?.min(events.len());
            (from, (from + limit).min(events.len()))
        }
        Some(t) => {
            let to = offset(Some(t), "b/")?.min(events.len());
            (to.saturating_sub(limit), to)
        }
        None if input.start_from_head == Some(true) => (0, limit.min(events.len())),
        None => (events.len().saturating_sub(limit), events.len()),
    };
    let page: Vec<Value> = events[start..end]
        .iter()
        .map(|e| json!({"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.timestamp}))
        .collect();
    Ok(json!({
        "events": page,
        "nextForwardToken": format!("f/{end:056}"),
        "nextBackwardToken": format!("b/{start:056}"),
    }))
}

fn in_range(t: i64, start: Option<i64>, end: Option<i64>) -> bool {
    start.is_none_or(|s| t >= s) && end.is_none_or(|e| t < e)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterEvents {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_names: Option<Vec<String>>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

/// FilterLogEvents: the matching events of the chosen streams, in time order.
fn filter_events(record: &LogRecord, input: FilterEvents) -> Result<Value, LogsError> {
    let group = group_name(input.log_group_name, input.log_group_identifier)?;
    if input.log_stream_names.is_some() && input.log_stream_name_prefix.is_some() {
        return Err(LogsError::invalid(
            "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
        ));
    }
    let start = offset(input.next_token.as_deref(), "e/")?;
    let limit = limit(input.limit, MAX_EVENTS)?;
    let pattern = Pattern::parse(input.filter_pattern.as_deref().unwrap_or(""))?;
    let streams = record
        .streams(&group)
        .ok_or_else(|| LogsError::not_found("The specified log group does not exist."))?;
    let prefix = input.log_stream_name_prefix.unwrap_or_default();
    let chosen: Vec<&StreamInfo> = streams
        .iter()
        .filter(|s| match &input.log_stream_names {
            Some(names) => names.contains(&s.name),
            None => s.name.starts_with(&prefix),
        })
        .collect();
    let mut matched: Vec<(i64, &str, usize, String)> = Vec::new();
    for stream in &chosen {
        for (i, e) in record
            .read(&group, &stream.name)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if in_range(e.timestamp, input.start_time, input.end_time)
                && pattern.matches(&e.message)
            {
                matched.push((e.timestamp, &stream.name, i, e.message));
            }
        }
    }
    matched.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let page: Vec<Value> = matched
        .iter()
        .skip(start)
        .take(limit)
        .map(|(t, stream, i, message)| {
            json!({
                "logStreamName": stream,
                "timestamp": t,
                "message": message,
                "ingestionTime": t,
                "eventId": format!("{t}-{stream}-{i}"),
            })
        })
        .collect();
    let searched: Vec<Value> = chosen
        .iter()
        .map(|s| json!({"logStreamName": s.name, "searchedCompletely": true}))
        .collect();
    let mut out = json!({ "events": page, "searchedLogStreams": searched });
    if start + limit < matched.len() {
        out["nextToken"] = json!(format!("e/{}", start + limit));
    }
    Ok(out)
}

/// CloudWatch's filter pattern for unstructured text: every term must appear, `?term`s
/// any one of them, `-term`s none; `"quoted phrases"` are one term. JSON and
/// space-delimited patterns (`{ $.x = 1 }`, `[a, b]`) are refused by name.
#[derive(Debug, Default, PartialEq, Eq)]
struct Pattern {
    all: Vec<String>,
    any: Vec<String>,
    none: Vec<String>,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, LogsError> {
        let text = text.trim();
        if text.starts_with('{') || text.starts_with('[') || text.starts_with('%') {
            return Err(LogsError::invalid(format!(
                "sagedock's FilterLogEvents matches terms (\"all of these\", ?any, -none), not JSON, space-delimited or regular-expression patterns: {text}"
            )));
        }
        let mut pattern = Pattern::default();
        let mut rest = text;
        while !rest.is_empty() {
            let (kind, after) = match rest.as_bytes()[0] {
                b'?' => (1, &rest[1..]),
                b'-' => (2, &rest[1..]),
                _ => (0, rest),
            };
            let (term, next) = match after.strip_prefix('"') {
                Some(quoted) => match quoted.find('"') {
                    Some(end) => (&quoted[..end], &quoted[end + 1..]),
                    None => {
                        return Err(LogsError::invalid(
                            "Invalid character(s) in term: an unclosed quote",
                        ))
                    }
                },
                None => after.split_once(' ').unwrap_or((after, "")),
            };
            if !term.is_empty() {
                let list = match kind {
                    1 => &mut pattern.any,
                    2 => &mut pattern.none,
                    _ => &mut pattern.all,
                };
                list.push(term.to_string());
            }
            rest = next.trim_start();
        }
        Ok(pattern)
    }

    fn matches(&self, message: &str) -> bool {
        self.all.iter().all(|t| message.contains(t.as_str()))
            && (self.any.is_empty() || self.any.iter().any(|t| message.contains(t.as_str())))
            && !self.none.iter().any(|t| message.contains(t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> (tempfile::TempDir, LogRecord) {
        let dir = tempfile::tempdir().unwrap();
        let record = LogRecord::open(dir.path()).unwrap();
        let events = |base: i64, words: &[&str]| -> Vec<Event> {
            words
                .iter()
                .zip(0..)
                .map(|(w, i)| Event {
                    timestamp: base + i * 10,
                    message: (*w).to_string(),
                })
                .collect()
        };
        record
            .append(
                "/aws/sagemaker/Endpoints/ep",
                "AllTraffic/a",
                &events(1000, &["start", "ERROR one", "ready"]),
            )
            .unwrap();
        record
            .append(
                "/aws/sagemaker/Endpoints/ep",
                "AllTraffic/b",
                &events(1005, &["start", "WARN two"]),
            )
            .unwrap();
        (dir, record)
    }

    fn call(record: &LogRecord, op: &str, input: Value) -> Result<Value, LogsError> {
        handle(
            record,
            &format!("Logs_20140328.{op}"),
            input.to_string().as_bytes(),
            "123456789012",
            "us-east-1",
        )
    }

    #[test]
    fn streams_are_described_in_order_and_paged() {
        let (_d, r) = record();
        let out = call(
            &r,
            "DescribeLogStreams",
            json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "limit": 1}),
        )
        .unwrap();
        assert_eq!(out["logStreams"][0]["logStreamName"], "AllTraffic/a");
        assert_eq!(out["logStreams"][0]["firstEventTimestamp"], 1000);
        assert_eq!(out["logStreams"][0]["arn"], "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/ep:log-stream:AllTraffic/a");
        let next = out["nextToken"].as_str().unwrap().to_string();
        let out = call(
            &r,
            "DescribeLogStreams",
            json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "nextToken": next}),
        )
        .unwrap();
        assert_eq!(out["logStreams"][0]["logStreamName"], "AllTraffic/b");
        assert!(out.get("nextToken").is_none());
        let out = call(&r, "DescribeLogStreams", json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "orderBy": "LastEventTime", "descending": true})).unwrap();
        assert_eq!(out["logStreams"][0]["logStreamName"], "AllTraffic/a");
        let missing = call(
            &r,
            "DescribeLogStreams",
            json!({"logGroupName": "/aws/sagemaker/Endpoints/nope"}),
        )
        .unwrap_err();
        assert_eq!(
            (missing.kind, missing.message.as_str()),
            (
                "ResourceNotFoundException",
                "The specified log group does not exist."
            )
        );
    }

    #[test]
    fn get_log_events_pages_forward_and_returns_the_same_token_at_the_end() {
        let (_d, r) = record();
        let input = |token: Option<&str>| {
            let mut v = json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "logStreamName": "AllTraffic/a", "startFromHead": true, "limit": 2});
            if let Some(t) = token {
                v["nextToken"] = json!(t);
            }
            v
        };
        let first = call(&r, "GetLogEvents", input(None)).unwrap();
        let messages: Vec<&str> = first["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        assert_eq!(messages, ["start", "ERROR one"]);
        let token = first["nextForwardToken"].as_str().unwrap();
        let second = call(&r, "GetLogEvents", input(Some(token))).unwrap();
        assert_eq!(second["events"][0]["message"], "ready");
        let token = second["nextForwardToken"].as_str().unwrap();
        let third = call(&r, "GetLogEvents", input(Some(token))).unwrap();
        assert_eq!(third["events"].as_array().unwrap().len(), 0);
        assert_eq!(third["nextForwardToken"].as_str().unwrap(), token);
        // Without startFromHead, the newest events come first.
        let tail = call(&r, "GetLogEvents", json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "logStreamName": "AllTraffic/a", "limit": 1})).unwrap();
        assert_eq!(tail["events"][0]["message"], "ready");
        // The time range is [startTime, endTime).
        let ranged = call(&r, "GetLogEvents", json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "logStreamName": "AllTraffic/a", "startTime": 1010, "endTime": 1020})).unwrap();
        assert_eq!(ranged["events"].as_array().unwrap().len(), 1);
        let missing = call(
            &r,
            "GetLogEvents",
            json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "logStreamName": "nope"}),
        )
        .unwrap_err();
        assert_eq!(missing.message, "The specified log stream does not exist.");
        let bad = call(&r, "GetLogEvents", json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "logStreamName": "AllTraffic/a", "nextToken": "zzz"})).unwrap_err();
        assert_eq!(bad.kind, "InvalidParameterException");
    }

    #[test]
    fn filter_log_events_merges_streams_in_time_order_and_applies_the_pattern() {
        let (_d, r) = record();
        let all = call(
            &r,
            "FilterLogEvents",
            json!({"logGroupName": "/aws/sagemaker/Endpoints/ep"}),
        )
        .unwrap();
        let order: Vec<(i64, &str)> = all["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["timestamp"].as_i64().unwrap(),
                    e["message"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            order,
            [
                (1000, "start"),
                (1005, "start"),
                (1010, "ERROR one"),
                (1015, "WARN two"),
                (1020, "ready")
            ]
        );
        let any = call(
            &r,
            "FilterLogEvents",
            json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "filterPattern": "?ERROR ?WARN"}),
        )
        .unwrap();
        assert_eq!(any["events"].as_array().unwrap().len(), 2);
        let phrase = call(&r, "FilterLogEvents", json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "filterPattern": "\"ERROR one\"", "logStreamNames": ["AllTraffic/a"]})).unwrap();
        assert_eq!(phrase["events"][0]["logStreamName"], "AllTraffic/a");
        let none = call(
            &r,
            "FilterLogEvents",
            json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "filterPattern": "start -WARN"}),
        )
        .unwrap();
        assert_eq!(none["events"].as_array().unwrap().len(), 2);
        let json_pattern = call(&r, "FilterLogEvents", json!({"logGroupName": "/aws/sagemaker/Endpoints/ep", "filterPattern": "{ $.level = \"x\" }"})).unwrap_err();
        assert_eq!(json_pattern.kind, "InvalidParameterException");
    }

    #[test]
    fn writes_and_bad_bodies_are_refused_in_the_api_shape() {
        let (_d, r) = record();
        let put = call(&r, "PutLogEvents", json!({})).unwrap_err();
        assert_eq!(put.kind, "UnknownOperationException");
        assert!(put.message.contains("PutLogEvents"));
        let bad = handle(&r, "Logs_20140328.GetLogEvents", b"{not json", "1", "r").unwrap_err();
        assert_eq!(bad.kind, "SerializationException");
        let groups = call(
            &r,
            "DescribeLogGroups",
            json!({"logGroupNamePrefix": "/aws/sagemaker/"}),
        )
        .unwrap();
        assert_eq!(
            groups["logGroups"][0]["logGroupName"],
            "/aws/sagemaker/Endpoints/ep"
        );
    }
}
