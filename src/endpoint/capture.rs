//! Data capture (EndpointConfig.DataCaptureConfig): a sample of an endpoint's requests and
//! responses written to `DestinationS3Uri` in SageMaker's JSON-lines capture format, so
//! that a Model Monitor setup can be checked against real records before it costs anything.
//!
//! Each sampled call (InitialSamplingPercentage, per call) becomes one line:
//! `{"captureData": {"endpointInput": …, "endpointOutput": …}, "eventMetadata": {"eventId",
//! "inferenceId"?, "inferenceTime"}, "eventVersion": "0"}`, each side with its observed
//! content type, `mode` (INPUT / OUTPUT), `data` and `encoding` (CSV or JSON when the media
//! type is one CaptureContentTypeHeader lists, BASE64 otherwise). Only the sides
//! CaptureOptions asks for are written; only calls the model answered with 2xx are
//! captured. Lines are gathered for a second and written as one new object,
//! `<destination>/<endpoint>/<variant>/YYYY/MM/DD/HH/<mm>-<ss>-<mmm>-<uuid>.jsonl` (UTC, the
//! time of the object's first record), complete when it appears (SageMaker writes about a
//! file a minute; a second keeps local feedback quick).
//!
//! Does not: capture asynchronous or streaming invocations (SageMaker captures them too;
//! not yet here).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::uuid_like;
use crate::storage::{S3Location, Storage};

/// How many records may wait to be written before new ones are dropped (SageMaker also
/// pauses capture when it cannot keep up).
const BACKLOG: usize = 10_000;
/// How long records gather before they are written as one object.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What an endpoint configuration asks to capture.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSettings {
    pub enabled: bool,
    /// InitialSamplingPercentage, 0–100.
    pub sampling_percentage: u32,
    pub destination: S3Location,
    pub input: bool,
    pub output: bool,
    /// Media types whose payloads are kept as text, encoding CSV.
    pub csv_types: Vec<String>,
    /// Media types whose payloads are kept as text, encoding JSON.
    pub json_types: Vec<String>,
}

/// One call, as the router saw it.
pub struct Call<'a> {
    pub variant: &'a str,
    pub input_type: Option<&'a str>,
    pub input: &'a [u8],
    pub output_type: Option<&'a str>,
    pub output: &'a [u8],
    pub inference_id: Option<&'a str>,
}

/// The capture of one deployment: settings, and the channel to its writer.
#[derive(Debug)]
pub struct Capture {
    pub settings: CaptureSettings,
    records: mpsc::Sender<(String, SystemTime, String)>,
}

impl Capture {
    /// Starts the writer for `endpoint` (on the current runtime); it ends, writing what
    /// it holds, when the capture is dropped.
    pub fn start(settings: CaptureSettings, endpoint: &str, storage: Storage) -> Capture {
        let (records, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(write_records(
            rx,
            settings.destination.clone(),
            endpoint.to_string(),
            storage,
        ));
        Capture { settings, records }
    }

    /// Whether a call drawn at `random` (in [0, 1)) is captured.
    pub fn samples(&self, random: f64) -> bool {
        self.settings.enabled && random * 100.0 < f64::from(self.settings.sampling_percentage)
    }

    /// Queues one call's record (dropped, with a warning, when the writer is behind).
    pub fn record(&self, call: &Call<'_>, event_id: u64) {
        let now = SystemTime::now();
        let line = self.line(call, now, event_id).to_string();
        if self
            .records
            .try_send((call.variant.to_string(), now, line))
            .is_err()
        {
            tracing::warn!("data capture is behind by {BACKLOG} records; a record was dropped");
        }
    }

    fn line(&self, call: &Call<'_>, at: SystemTime, event_id: u64) -> Value {
        let mut data = serde_json::Map::new();
        if self.settings.input {
            data.insert(
                "endpointInput".into(),
                self.side("INPUT", call.input_type, call.input),
            );
        }
        if self.settings.output {
            data.insert(
                "endpointOutput".into(),
                self.side("OUTPUT", call.output_type, call.output),
            );
        }
        let mut metadata = json!({
            "eventId": uuid_like(event_id),
            "inferenceTime": humantime::format_rfc3339_seconds(at).to_string(),
        });
        if let Some(id) = call.inference_id {
            metadata["inferenceId"] = json!(id);
        }
        json!({"captureData": data, "eventMetadata": metadata, "eventVersion": "0"})
    }

    /// One side of a call: text when its media type is listed and it is UTF-8, else base64.
    fn side(&self, mode: &str, content_type: Option<&str>, payload: &[u8]) -> Value {
        let media = content_type
            .map(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let listed = |types: &[String]| types.iter().any(|t| t.eq_ignore_ascii_case(&media));
        let text = std::str::from_utf8(payload).ok();
        let (encoding, data) = match text {
            Some(text) if listed(&self.settings.csv_types) => ("CSV", text.to_string()),
            Some(text) if listed(&self.settings.json_types) => ("JSON", text.to_string()),
            _ => ("BASE64", base64(payload)),
        };
        json!({
            "observedContentType": content_type,
            "mode": mode,
            "data": data,
            "encoding": encoding,
        })
    }
}

/// Gathers records per variant and writes each second's as one object.
async fn write_records(
    mut rx: mpsc::Receiver<(String, SystemTime, String)>,
    destination: S3Location,
    endpoint: String,
    storage: Storage,
) {
    let mut pending: BTreeMap<String, (SystemTime, String)> = BTreeMap::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let mut objects = 0u64;
    loop {
        tokio::select! {
            record = rx.recv() => match record {
                Some((variant, at, line)) => {
                    let (_, text) = pending.entry(variant).or_insert_with(|| (at, String::new()));
                    text.push_str(&line);
                    text.push('\n');
                }
                None => {
                    flush(&mut pending, &destination, &endpoint, &storage, &mut objects).await;
                    return;
                }
            },
            _ = tick.tick() => {
                flush(&mut pending, &destination, &endpoint, &storage, &mut objects).await;
            }
        }
    }
}

async fn flush(
    pending: &mut BTreeMap<String, (SystemTime, String)>,
    destination: &S3Location,
    endpoint: &str,
    storage: &Storage,
    objects: &mut u64,
) {
    for (variant, (first, text)) in std::mem::take(pending) {
        *objects += 1;
        let key = object_key(endpoint, &variant, first, *objects);
        let written = match destination.join(&key) {
            Ok(location) => storage.write(&location, Bytes::from(text)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(endpoint, variant, error = %e, "data capture could not be written");
        }
    }
}

/// `<endpoint>/<variant>/YYYY/MM/DD/HH/<mm>-<ss>-<mmm>-<uuid>.jsonl` for records from `at`.
fn object_key(endpoint: &str, variant: &str, at: SystemTime, n: u64) -> String {
    // 2026-11-30T09:05:07.123Z
    let stamp = humantime::format_rfc3339_millis(at).to_string();
    let (date, time) = stamp.split_once('T').unwrap_or((&stamp, ""));
    let date = date.replace('-', "/");
    let hour = time.get(0..2).unwrap_or("00");
    let minute = time.get(3..5).unwrap_or("00");
    let second = time.get(6..8).unwrap_or("00");
    let millis = time.get(9..12).unwrap_or("000");
    let salt = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| {
        u64::from(d.subsec_nanos()) ^ d.as_secs().rotate_left(17)
    });
    format!(
        "{endpoint}/{variant}/{date}/{hour}/{minute}-{second}-{millis}-{}.jsonl",
        uuid_like(salt ^ n.rotate_left(40))
    )
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CaptureSettings {
        CaptureSettings {
            enabled: true,
            sampling_percentage: 100,
            destination: S3Location::parse("s3://bucket/capture").unwrap(),
            input: true,
            output: true,
            csv_types: vec!["text/csv".into()],
            json_types: vec!["application/json".into()],
        }
    }

    fn capture(settings: CaptureSettings) -> Capture {
        let (records, _rx) = mpsc::channel(1);
        Capture { settings, records }
    }

    #[test]
    fn records_have_sagemakers_shape_and_encodings() {
        let c = capture(settings());
        let call = Call {
            variant: "AllTraffic",
            input_type: Some("text/csv"),
            input: b"69,0,153.7\n",
            output_type: Some("application/json; charset=utf-8"),
            output: b"{\"score\": 0.25}",
            inference_id: Some("7"),
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_644_859_549);
        let line = c.line(&call, at, 1);
        let input = &line["captureData"]["endpointInput"];
        assert_eq!(input["observedContentType"], "text/csv");
        assert_eq!(
            (input["mode"].as_str(), input["encoding"].as_str()),
            (Some("INPUT"), Some("CSV"))
        );
        assert_eq!(input["data"], "69,0,153.7\n");
        let output = &line["captureData"]["endpointOutput"];
        assert_eq!(
            (output["mode"].as_str(), output["encoding"].as_str()),
            (Some("OUTPUT"), Some("JSON"))
        );
        assert_eq!(output["data"], "{\"score\": 0.25}");
        assert_eq!(line["eventMetadata"]["inferenceId"], "7");
        assert_eq!(
            line["eventMetadata"]["inferenceTime"],
            "2022-02-14T17:25:49Z"
        );
        assert_eq!(line["eventVersion"], "0");
        assert_eq!(line["eventMetadata"]["eventId"].as_str().unwrap().len(), 36);
    }

    #[test]
    fn unlisted_types_and_binary_payloads_are_base64_and_options_choose_the_sides() {
        let mut s = settings();
        s.output = false;
        let c = capture(s);
        let call = Call {
            variant: "v",
            input_type: Some("application/x-image"),
            input: &[0xff, 0x00, 0x10],
            output_type: None,
            output: b"",
            inference_id: None,
        };
        let line = c.line(&call, SystemTime::now(), 2);
        assert_eq!(line["captureData"]["endpointInput"]["encoding"], "BASE64");
        assert_eq!(line["captureData"]["endpointInput"]["data"], "/wAQ");
        assert!(line["captureData"].get("endpointOutput").is_none());
        assert!(line["eventMetadata"].get("inferenceId").is_none());
        // CSV listed, but not UTF-8: base64.
        let c = capture(settings());
        let call = Call {
            input_type: Some("text/csv"),
            input: &[0xc3, 0x28],
            ..call
        };
        assert_eq!(
            c.line(&call, SystemTime::now(), 3)["captureData"]["endpointInput"]["encoding"],
            "BASE64"
        );
    }

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn objects_are_named_by_the_hour_and_first_record() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_650_240_648_871);
        let key = object_key("ep", "AllTraffic", at, 1);
        assert!(
            key.starts_with("ep/AllTraffic/2022/04/18/00/10-48-871-"),
            "{key}"
        );
        assert!(key.ends_with(".jsonl"));
    }

    #[test]
    fn sampling_follows_the_percentage_and_the_switch() {
        let mut s = settings();
        s.sampling_percentage = 30;
        let c = capture(s.clone());
        assert!(c.samples(0.29) && !c.samples(0.30));
        s.enabled = false;
        assert!(!capture(s).samples(0.0));
    }
}
