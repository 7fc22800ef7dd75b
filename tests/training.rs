//! Training and tuning jobs across restarts of `sagedock up`: a job that was running when
//! sagedock stopped (cleanly or killed) is marked Failed with a reason, never left
//! InProgress; finished jobs keep their record; the killed run's containers and folders
//! are removed. The client suites (harness/clients/test_training.py,
//! test_sdk_training.py) cover the jobs themselves.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::docker::{labelled_containers, ready};
use crate::util::up::{aws, ok, Up};
use crate::util::Sandbox;

const IMAGE: &str = "sagedock/byo-train:latest";

fn job(name: &str, mode: &str) -> Value {
    json!({
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/R",
        "HyperParameters": {"mode": mode, "epochs": "1"},
        "OutputDataConfig": {"S3OutputPath": "s3://restart-tests/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    })
}

fn describe(url: &str, name: &str) -> Value {
    ok(url, "DescribeTrainingJob", json!({"TrainingJobName": name}))
}

fn wait_for(url: &str, name: &str, what: &str, until: &[&str]) -> Value {
    let t0 = Instant::now();
    loop {
        let job = describe(url, name);
        if until.contains(&job[what].as_str().unwrap_or("")) {
            return job;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "stuck: {job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tuning(name: &str) -> Value {
    let mut definition = job("unused", "sleep");
    let definition = definition.as_object_mut().unwrap();
    definition.remove("TrainingJobName");
    let statics = definition.remove("HyperParameters").unwrap();
    definition.insert("StaticHyperParameters".into(), statics);
    definition["AlgorithmSpecification"]["MetricDefinitions"] =
        json!([{"Name": "accuracy", "Regex": "accuracy: ([0-9.]+)"}]);
    json!({
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "accuracy"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {"IntegerParameterRanges": [{"Name": "seconds", "MinValue": "300", "MaxValue": "400"}]},
        },
        "TrainingJobDefinition": definition,
    })
}

#[test]
fn jobs_running_when_sagedock_stops_end_failed_and_finished_ones_stay() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.join("s3/restart-tests")).unwrap();
    let up = Up::start(&sb).unwrap();
    ok(&up.url, "CreateTrainingJob", job("finished", "ok"));
    let finished = wait_for(&up.url, "finished", "TrainingJobStatus", &["Completed"]);
    // `sagedock logs JOB` reads the job's streams from the record.
    let text = sb.logs("finished");
    assert!(
        text.contains("byo-train on algo-1") && text.contains("done"),
        "{text}"
    );
    ok(&up.url, "CreateTrainingJob", job("killed", "sleep"));
    wait_for(&up.url, "killed", "SecondaryStatus", &["Training"]);
    ok(
        &up.url,
        "CreateHyperParameterTuningJob",
        tuning("tuning-killed"),
    );
    let running = labelled_containers("label=sagedock.training-job=killed");
    assert_eq!(running.len(), 1);
    assert!(sb.join("data/training/killed").is_dir());

    up.signal("KILL");
    assert_eq!(
        labelled_containers("label=sagedock.training-job=killed"),
        running,
        "SIGKILL leaves the container"
    );
    let up = Up::start(&sb).unwrap();
    let killed = describe(&up.url, "killed");
    assert_eq!(killed["TrainingJobStatus"], "Failed", "{killed}");
    assert!(
        killed["FailureReason"]
            .as_str()
            .unwrap()
            .contains("not resumed after a restart"),
        "{killed}"
    );
    assert_eq!(killed["SecondaryStatus"], "Failed");
    assert_eq!(
        describe(&up.url, "finished"),
        finished,
        "a finished job is as it was"
    );
    let tuned = ok(
        &up.url,
        "DescribeHyperParameterTuningJob",
        json!({"HyperParameterTuningJobName": "tuning-killed"}),
    );
    assert_eq!(tuned["HyperParameterTuningJobStatus"], "Failed", "{tuned}");
    let t0 = Instant::now();
    while !labelled_containers("label=sagedock.training-job=killed").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the killed run's container stays"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !sb.join("data/training/killed").exists(),
        "its folder is removed"
    );

    // A clean stop marks the running job at once.
    ok(
        &up.url,
        "CreateTrainingJob",
        job("stopped-with-up", "sleep"),
    );
    wait_for(&up.url, "stopped-with-up", "SecondaryStatus", &["Training"]);
    assert_eq!(up.signal("TERM"), Some(0));
    assert!(labelled_containers("label=sagedock.training-job=stopped-with-up").is_empty());
    let up = Up::start(&sb).unwrap();
    let job = describe(&up.url, "stopped-with-up");
    assert_eq!(job["TrainingJobStatus"], "Failed", "{job}");
    let (status, listed) = aws(
        &up.url,
        "ListTrainingJobs",
        json!({"SortBy": "Name", "SortOrder": "Ascending"}),
    );
    assert_eq!(status, 200);
    let names: Vec<&str> = listed["TrainingJobSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["TrainingJobName"].as_str())
        .filter(|n| !n.starts_with("tuning-killed"))
        .collect();
    assert_eq!(names, ["finished", "killed", "stopped-with-up"]);
    assert_eq!(up.signal("TERM"), Some(0));
}
