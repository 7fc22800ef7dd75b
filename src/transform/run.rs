//! One transform job from its containers' start to its end: launched and healthy, the
//! parameters resolved (request, then `/execution-parameters`, then SageMaker's
//! defaults), the objects listed and dealt to the instances, each object transformed and
//! its `.out` written only once all of it succeeded, then `Completed`, `Failed` (the first
//! failure's reason; the other objects still run, and the outputs written stay) or
//! `Stopped`. Whatever happens, the containers are removed at the end (in the
//! background: the job's status does not wait for them).

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use tokio::sync::{watch, Semaphore};

use super::execution::{self, Offered};
use super::filter::{Format, Processing};
use super::records::{self, Batch, Record};
use super::Transformer;
use crate::deploy::{DeployError, EndpointPlan};
use crate::endpoint::client::{self, Passed};
use crate::endpoint::Backend;
use crate::logs::{epoch_millis, transform_data_stream, Event, LogRecord, TRANSFORM_JOBS_GROUP};
use crate::state::training_job::S3DataType;
use crate::state::transform_job::{
    AssembleWith, BatchStrategy, Progress, SplitType, TransformJobSpec,
};
use crate::state::{now, JobStatus, TransformJob};
use crate::storage::{ModelLocation, Objects, S3Location, Storage};
use crate::sync::locked;

/// How a run ended, when it did not fail.
enum Ending {
    Completed,
    Stopped,
}

/// Runs `job` on `plan`'s containers to its end, writing its record as it goes.
pub async fn run(
    transformer: &Arc<Transformer>,
    job: &TransformJob,
    plan: &EndpointPlan,
    mut stop: watch::Receiver<bool>,
) {
    let log = DataLog {
        record: transformer.record.clone(),
        stream: transform_data_stream(&job.name),
    };
    let downloads = transformer.work.join(&job.name);
    let progress = Arc::new(Mutex::new(Progress::default()));
    let ending = execute(
        transformer,
        job,
        plan,
        &log,
        &downloads,
        &progress,
        &mut stop,
    )
    .await;
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(downloads)).await;
    // The counts go to the record with the end, in one write.
    let counted = *locked(&progress);
    match ending {
        Ok(Ending::Completed) => {
            log.line("Transform job completed.");
            transformer.update(&job.name, |j| {
                j.progress = counted;
                j.finish(JobStatus::Completed, now());
            });
        }
        Ok(Ending::Stopped) => {
            log.line("Transform job stopped.");
            transformer.update(&job.name, |j| {
                j.progress = counted;
                j.finish(JobStatus::Stopped, now());
            });
        }
        Err(reason) => {
            log.line(&reason);
            transformer.update(&job.name, |j| {
                j.progress = counted;
                j.fail(&reason, now());
            });
        }
    }
}

/// The job's own lines, in its `data-log` stream.
#[derive(Clone)]
struct DataLog {
    record: Arc<LogRecord>,
    stream: String,
}

impl DataLog {
    fn line(&self, message: impl Into<String>) {
        let event = Event {
            timestamp: epoch_millis(SystemTime::now()),
            message: message.into(),
        };
        if let Err(e) = self
            .record
            .append(TRANSFORM_JOBS_GROUP, &self.stream, &[event])
        {
            tracing::warn!(stream = %self.stream, error = %e, "could not record a transform job's line");
        }
    }
}

/// What a run goes by: the request's values, else the container's, else SageMaker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    concurrency: u32,
    max_payload_mb: u32,
    strategy: BatchStrategy,
}

fn resolve(spec: &TransformJobSpec, offered: &Offered) -> Params {
    Params {
        concurrency: spec
            .max_concurrent_transforms
            .filter(|n| *n > 0)
            .or(offered.concurrency.filter(|n| *n > 0))
            .unwrap_or(1),
        max_payload_mb: spec
            .max_payload_in_mb
            .or(offered.max_payload_mb)
            .unwrap_or(TransformJobSpec::DEFAULT_MAX_PAYLOAD_MB),
        strategy: spec
            .batch_strategy
            .or(offered.strategy)
            .unwrap_or(BatchStrategy::MultiRecord),
    }
}

/// Everything up to the final status; an error is the FailureReason.
async fn execute(
    transformer: &Arc<Transformer>,
    job: &TransformJob,
    plan: &EndpointPlan,
    log: &DataLog,
    downloads: &Path,
    progress: &Arc<Mutex<Progress>>,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ending, String> {
    let spec = &job.spec;
    log.line(format!(
        "Starting {} instance(s) of {} for model {}",
        spec.transform_resources.instance_count,
        spec.transform_resources.instance_type,
        spec.model_name
    ));
    let launched = tokio::select! {
        launched = transformer.deployer.launch(plan) => launched,
        _ = stop.wait_for(|s| *s) => return Ok(Ending::Stopped),
    };
    let fleet = launched.map_err(|e| match e {
        DeployError::Capacity(_) | DeployError::ModelData { .. } | DeployError::Artifact { .. } => {
            format!("ClientError: {e}")
        }
        e if e.is_start_failure() => {
            format!("AlgorithmError: the model container did not start: {e}")
        }
        e => format!("InternalServerError: {e}"),
    })?;
    let instances: Vec<Vec<Arc<Backend>>> = fleet
        .variants
        .iter()
        .flat_map(|v| &v.instances)
        .map(|members| members.iter().map(|m| m.backend.clone()).collect())
        .collect();
    let ending = tokio::select! {
        ending = transform(transformer, job, &instances, log, downloads, progress) => ending,
        _ = stop.wait_for(|s| *s) => Ok(Ending::Stopped),
    };
    drop(instances);
    // The job's outcome is known now: it is not held back while the containers stop (an
    // image whose server ignores SIGTERM takes the engine's whole grace period).
    tokio::spawn(fleet.remove());
    ending
}

/// Everything one object's work needs, shared by the instances' tasks.
struct Work {
    storage: Storage,
    spec: TransformJobSpec,
    params: Params,
    processing: Option<Processing>,
    headers: HeaderMap,
    timeout: Duration,
    retries: u32,
    output: S3Location,
    log: DataLog,
    /// The objects and records done so far (written to the record at the end).
    progress: Arc<Mutex<Progress>>,
}

/// The transform proper, once every instance is healthy.
async fn transform(
    transformer: &Arc<Transformer>,
    job: &TransformJob,
    instances: &[Vec<Arc<Backend>>],
    log: &DataLog,
    downloads: &Path,
    progress: &Arc<Mutex<Progress>>,
) -> Result<Ending, String> {
    let spec = &job.spec;
    let first = instances
        .first()
        .and_then(|i| i.first())
        .ok_or("InternalServerError: no instance started")?;
    let offered = execution::ask(first.addr).await.offered();
    let params = resolve(spec, &offered);
    log.line(format!(
        "MaxConcurrentTransforms={}, MaxPayloadInMB={}, BatchStrategy={}{}",
        params.concurrency,
        params.max_payload_mb,
        params.strategy.env_value(),
        if offered == Offered::default() {
            ""
        } else {
            " (the container's /execution-parameters filled what the request left unset)"
        }
    ));
    let source = &spec.transform_input.data_source.s3_data_source;
    let objects = list(
        &transformer.storage,
        source.s3_data_type,
        &source.s3_uri,
        downloads,
    )
    .await
    .map_err(|e| format!("ClientError: {e}"))?;
    let total = objects.files.len() as u64;
    locked(progress).objects = total;
    transformer.update(&job.name, |j| j.begin(now()));
    log.line(format!("{total} object(s) under {}", source.s3_uri));
    let (timeout, retries) = spec.client();
    let work = Arc::new(Work {
        storage: transformer.storage.clone(),
        spec: spec.clone(),
        params,
        processing: processing(spec)?,
        headers: headers(spec),
        timeout: Duration::from_secs(u64::from(timeout)),
        retries,
        output: S3Location::parse(&spec.transform_output.s3_output_path)
            .map_err(|e| format!("ClientError: S3OutputPath: {e}"))?,
        log: log.clone(),
        progress: progress.clone(),
    });
    let count = instances.len().max(1);
    let tasks = instances.iter().enumerate().map(|(i, chain)| {
        let mine: Vec<(String, PathBuf)> = objects
            .files
            .iter()
            .enumerate()
            .filter(|(k, _)| k % count == i)
            .map(|(_, f)| f.clone())
            .collect();
        instance(work.clone(), chain.clone(), mine)
    });
    let failures: Vec<String> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect();
    match failures.split_first() {
        None => Ok(Ending::Completed),
        Some((first, [])) => Err(first.clone()),
        Some((first, rest)) => Err(format!(
            "{first} ({} more object(s) failed: see the job's data-log)",
            rest.len()
        )),
    }
}

/// The request's DataProcessing, parsed (None when it changes nothing).
fn processing(spec: &TransformJobSpec) -> Result<Option<Processing>, String> {
    let Some(dp) = spec.processing() else {
        return Ok(None);
    };
    let input = spec
        .transform_input
        .content_type
        .as_deref()
        .and_then(Format::of)
        .ok_or("ClientError: DataProcessing needs a CSV or JSON ContentType")?;
    let output = spec
        .transform_output
        .accept
        .as_deref()
        .and_then(Format::of)
        .unwrap_or(input);
    Processing::new(
        input,
        output,
        dp.input_filter.as_deref(),
        dp.output_filter.as_deref(),
        dp.joins(),
    )
    .map(Some)
    .map_err(|e| format!("ClientError: {e}"))
}

fn headers(spec: &TransformJobSpec) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let pairs = [
        (CONTENT_TYPE, spec.transform_input.content_type.as_deref()),
        (ACCEPT, spec.transform_output.accept.as_deref()),
    ];
    for (name, value) in pairs {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    headers
}

/// The input objects, as local files.
async fn list(
    storage: &Storage,
    kind: S3DataType,
    uri: &str,
    downloads: &Path,
) -> Result<Objects, String> {
    let location = S3Location::parse(uri).map_err(|e| e.to_string())?;
    let objects = match kind {
        S3DataType::S3Prefix => {
            let path = storage
                .fetch(&ModelLocation::S3(location), downloads)
                .await
                .map_err(|e| no_objects(uri, &e.to_string()))?;
            Objects::at(&path).map_err(|e| e.to_string())?
        }
        S3DataType::ManifestFile => storage.manifest(&location, downloads).await?,
        other => {
            return Err(format!(
                "S3DataType {other:?} is not read by batch transform"
            ))
        }
    };
    if objects.files.is_empty() {
        return Err(no_objects(uri, "it holds no objects"));
    }
    Ok(objects)
}

fn no_objects(uri: &str, detail: &str) -> String {
    format!("No S3 objects found under S3 URL \"{uri}\" given in input data source ({detail}). Ensure that objects exist under that S3 prefix.")
}

/// One instance's share of the objects, at most MaxConcurrentTransforms calls in flight
/// across them; the failures.
async fn instance(
    work: Arc<Work>,
    chain: Vec<Arc<Backend>>,
    objects: Vec<(String, PathBuf)>,
) -> Vec<String> {
    let slots = work.params.concurrency as usize;
    let permits = Arc::new(Semaphore::new(slots));
    let chain: Arc<[Arc<Backend>]> = chain.into();
    stream::iter(objects)
        .map(|(key, path)| {
            let (work, chain, permits) = (work.clone(), chain.clone(), permits.clone());
            async move { object(work, chain, permits, key, path).await.err() }
        })
        .buffer_unordered(slots)
        .filter_map(std::future::ready)
        .collect()
        .await
}

/// Transforms one object and writes its `.out`; the error is a FailureReason.
async fn object(
    work: Arc<Work>,
    chain: Arc<[Arc<Backend>]>,
    permits: Arc<Semaphore>,
    key: String,
    path: PathBuf,
) -> Result<(), String> {
    let fail = |detail: String| {
        work.log.line(format!("[sagemaker logs]: {key}: {detail}"));
        locked(&work.progress).objects_failed += 1;
        format!("ClientError: {key}: {detail}")
    };
    let data = read(&path, work.spec.gzip()).await.map_err(fail)?;
    let split = work.spec.split_type();
    let original = records::split(&data, split).map_err(|e| fail(e.to_string()))?;
    let (sent, sent_records) = match work.processing.as_ref() {
        Some(p) => filtered(p, &data, &original, split).map_err(fail)?,
        None => (data.clone(), original.clone()),
    };
    let limit_mb = work.params.max_payload_mb;
    let limit = (limit_mb > 0).then(|| limit_mb as usize * 1024 * 1024);
    let batches = records::batches(&sent, &sent_records, work.params.strategy, limit, limit_mb)
        .map_err(|e| fail(e.to_string()))?;
    let slots = work.params.concurrency as usize;
    let calls = batches.len();
    let ranges: Vec<Range<usize>> = match work.processing {
        Some(_) => batches.iter().map(|b| b.records.clone()).collect(),
        None => Vec::new(),
    };
    let answers: Vec<Bytes> = stream::iter(batches)
        .map(|batch| {
            let (work, chain, permits) = (work.clone(), chain.clone(), permits.clone());
            async move { call(&work, &chain, &permits, &batch).await }
        })
        .buffered(slots)
        .try_collect()
        .await
        .map_err(fail)?;
    let assembled = match &work.processing {
        Some(p) => joined(p, &data, &original, &ranges, &answers).map_err(fail)?,
        None => assemble(&answers, work.spec.assemble_with()),
    };
    let target = work
        .output
        .join(&format!("{key}.out"))
        .map_err(|e| fail(e.to_string()))?;
    work.storage
        .write(&target, Bytes::from(assembled))
        .await
        .map_err(|e| fail(format!("the output could not be written: {e}")))?;
    let n = original.len() as u64;
    let (done, total) = {
        let mut progress = locked(&work.progress);
        progress.objects_done += 1;
        progress.records += n;
        (progress.objects_done, progress.objects)
    };
    work.log.line(format!(
        "{key}: {n} record(s) in {calls} call(s) to {target} ({done}/{total} objects done)"
    ));
    Ok(())
}

/// The most a gzip object may decompress to (an object is held whole in memory).
const MAX_DECOMPRESSED: u64 = 4 << 30;

/// An object's bytes, decompressed when the input is gzip.
async fn read(path: &Path, gzip: bool) -> Result<Bytes, String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let raw = std::fs::read(&path).map_err(|e| format!("it could not be read: {e}"))?;
        if !gzip {
            return Ok(Bytes::from(raw));
        }
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                format!("CompressionType is Gzip, and it could not be decompressed: {e}")
            })?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(format!(
                "CompressionType is Gzip, and it decompresses to more than {} GiB; sagedock reads an object whole: split the input into smaller objects",
                MAX_DECOMPRESSED >> 30
            ));
        }
        Ok(Bytes::from(out))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The records as the model sees them after the InputFilter: their bytes, framed again,
/// and their ranges there (one per original record, in order).
fn filtered(
    processing: &Processing,
    data: &Bytes,
    original: &[Record],
    split: SplitType,
) -> Result<(Bytes, Vec<Record>), String> {
    let mut bodies = Vec::with_capacity(original.len());
    let mut changed = false;
    for (i, record) in original.iter().enumerate() {
        let body = &data[record.body.clone()];
        match processing
            .model_input(body)
            .map_err(|e| format!("record {}: InputFilter: {e}", i + 1))?
        {
            Some(new) => {
                changed = true;
                bodies.push(new);
            }
            None => bodies.push(body.to_vec()),
        }
    }
    if !changed {
        return Ok((data.clone(), original.to_vec()));
    }
    let framed = Bytes::from(records::frame(&bodies, split));
    let kind = if split == SplitType::None {
        SplitType::Line
    } else {
        split
    };
    let again = records::split(&framed, kind).map_err(|e| e.to_string())?;
    if again.len() != original.len() {
        return Err("the InputFilter left a record empty".into());
    }
    Ok((framed, again))
}

/// The answers as one object: each as it came; with AssembleWith Line, each ends with a
/// newline (one is added when the answer has none).
fn assemble(answers: &[Bytes], with: AssembleWith) -> Vec<u8> {
    let mut out = Vec::with_capacity(answers.iter().map(Bytes::len).sum::<usize>() + answers.len());
    for answer in answers {
        out.extend_from_slice(answer);
        if with == AssembleWith::Line && !answer.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out
}

/// With DataProcessing: every record's output (a mini-batch's answer has one line per
/// record) joined with the record and filtered, one line each.
fn joined(
    processing: &Processing,
    data: &Bytes,
    original: &[Record],
    batches: &[Range<usize>],
    answers: &[Bytes],
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (batch, answer) in batches.iter().zip(answers) {
        let text = answer.as_ref();
        let outputs: Vec<&[u8]> = if batch.len() == 1 {
            vec![text]
        } else {
            text.split(|b| *b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.is_empty())
                .collect()
        };
        if outputs.len() != batch.len() {
            return Err(format!(
                "the model answered {} line(s) for a mini-batch of {} records; JoinSource and OutputFilter need one line per record (or BatchStrategy SingleRecord)",
                outputs.len(),
                batch.len()
            ));
        }
        for (index, output) in batch.clone().zip(outputs) {
            let record = &data[original[index].body.clone()];
            let line = processing
                .written(record, output)
                .map_err(|e| format!("record {}: {e}", index + 1))?;
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// Sends one mini-batch through the instance's containers, trying again (up to
/// InvocationsMaxRetries) when no answer came or the container answered 5xx; the model's
/// answer, or why there is none.
async fn call(
    work: &Work,
    chain: &[Arc<Backend>],
    permits: &Semaphore,
    batch: &Batch,
) -> Result<Bytes, String> {
    // Said only when a call fails.
    let what = || {
        if batch.records.len() == 1 {
            format!("record {}", batch.records.start + 1)
        } else {
            format!(
                "records {} to {}",
                batch.records.start + 1,
                batch.records.end
            )
        }
    };
    let mut attempt = 0;
    loop {
        let permit = permits.acquire().await.map_err(|e| e.to_string())?;
        let passed =
            client::through(chain, &work.headers, batch.payload.clone(), work.timeout).await;
        let (again, detail) = match passed {
            Passed::Answered { answer, .. } if answer.status.is_success() => return Ok(answer.body),
            Passed::Answered { index, answer } => {
                let label = chain.get(index).map_or("primary", |b| b.label());
                (
                    answer.status.is_server_error(),
                    format!(
                        "the model container {label} answered {} for {}: {}",
                        answer.status.as_u16(),
                        what(),
                        String::from_utf8_lossy(&answer.body).trim()
                    ),
                )
            }
            Passed::Undelivered { why, .. } => (true, format!("{} ({})", why.detail(), what())),
        };
        drop(permit);
        if !again || attempt >= work.retries {
            return Err(detail);
        }
        attempt += 1;
        work.log.line(format!(
            "{detail}; trying again ({attempt} of {} retries)",
            work.retries
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(request: serde_json::Value) -> TransformJobSpec {
        serde_json::from_value(request).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "TransformJobName": "t", "ModelName": "m",
            "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}}},
            "TransformOutput": {"S3OutputPath": "s3://b/out/"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1}
        })
    }

    #[test]
    fn the_request_wins_then_the_container_then_the_defaults() {
        let offered = Offered {
            concurrency: Some(4),
            max_payload_mb: Some(2),
            strategy: Some(BatchStrategy::SingleRecord),
        };
        assert_eq!(
            resolve(&spec(base()), &offered),
            Params {
                concurrency: 4,
                max_payload_mb: 2,
                strategy: BatchStrategy::SingleRecord
            }
        );
        let mut request = base();
        request["MaxConcurrentTransforms"] = 2.into();
        request["BatchStrategy"] = "MultiRecord".into();
        let params = resolve(&spec(request), &offered);
        assert_eq!((params.concurrency, params.max_payload_mb), (2, 2));
        assert_eq!(params.strategy, BatchStrategy::MultiRecord);
        assert_eq!(
            resolve(&spec(base()), &Offered::default()),
            Params {
                concurrency: 1,
                max_payload_mb: 6,
                strategy: BatchStrategy::MultiRecord
            }
        );
    }

    #[test]
    fn assembled_lines_end_with_one_newline() {
        let answers = [Bytes::from_static(b"1"), Bytes::from_static(b"2\n")];
        assert_eq!(assemble(&answers, AssembleWith::Line), b"1\n2\n");
        assert_eq!(assemble(&answers, AssembleWith::None), b"12\n");
    }

    #[test]
    fn a_join_needs_one_output_line_per_record() {
        let p = Processing::new(Format::Csv, Format::Csv, None, None, true).unwrap();
        let data = Bytes::from_static(b"a,1\nb,2\n");
        let original = records::split(&data, SplitType::Line).unwrap();
        let batches: Vec<Range<usize>> =
            records::batches(&data, &original, BatchStrategy::MultiRecord, None, 0)
                .unwrap()
                .into_iter()
                .map(|b| b.records)
                .collect();
        let ok = joined(
            &p,
            &data,
            &original,
            &batches,
            &[Bytes::from_static(b"x\ny\n")],
        )
        .unwrap();
        assert_eq!(ok, b"a,1,x\nb,2,y\n");
        let err = joined(
            &p,
            &data,
            &original,
            &batches,
            &[Bytes::from_static(b"x\n")],
        )
        .unwrap_err();
        assert!(
            err.contains("1 line(s) for a mini-batch of 2 records"),
            "{err}"
        );
    }

    #[test]
    fn an_input_filter_changes_what_is_sent_not_what_is_joined() {
        let p = Processing::new(Format::Csv, Format::Csv, Some("$[1:]"), None, true).unwrap();
        let data = Bytes::from_static(b"id1,1,2\nid2,3,4\n");
        let original = records::split(&data, SplitType::Line).unwrap();
        let (sent, records) = filtered(&p, &data, &original, SplitType::Line).unwrap();
        assert_eq!(sent, "1,2\n3,4\n");
        assert_eq!(records.len(), 2);
    }
}
