//! Transform jobs across restarts of `sagedock up`: a job that was running when sagedock
//! was killed is marked Failed with a reason, never left InProgress; a finished job keeps
//! its record and its output; the killed run's containers are removed; `sagedock logs JOB`
//! reads the job's streams. The client suites (harness/clients/test_transform.py,
//! test_sdk_transform.py) cover the jobs themselves.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::docker::{labelled_containers, ready};
use crate::util::up::{ok, Up};
use crate::util::Sandbox;

fn job(name: &str) -> Value {
    json!({
        "TransformJobName": name,
        "ModelName": "scorer",
        "BatchStrategy": "SingleRecord",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": format!("s3://restart-tests/{name}/")}},
                           "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": format!("s3://restart-tests/out/{name}"), "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    })
}

fn describe(url: &str, name: &str) -> Value {
    ok(
        url,
        "DescribeTransformJob",
        json!({"TransformJobName": name}),
    )
}

fn wait_until(url: &str, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let job = describe(url, name);
        if done(&job) {
            return job;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "stuck: {job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_transform_job_running_when_sagedock_is_killed_ends_failed_and_a_finished_one_stays() {
    if !ready() {
        return;
    }
    let sb = Sandbox::new();
    for (name, body) in [
        ("finished", "1,2\n3,4\n".to_string()),
        ("killed", "1,1\n".repeat(200)),
    ] {
        std::fs::create_dir_all(sb.join(&format!("s3/restart-tests/{name}"))).unwrap();
        std::fs::write(sb.join(&format!("s3/restart-tests/{name}/a.csv")), body).unwrap();
    }
    let up = Up::start(&sb).unwrap();
    // Slow enough that the second job is still running when sagedock is killed.
    ok(
        &up.url,
        "CreateModel",
        json!({"ModelName": "scorer", "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R",
               "PrimaryContainer": {"Image": "sagedock/byo-train:latest", "Environment": {"BYO_DELAY": "0.2"}}}),
    );
    ok(&up.url, "CreateTransformJob", job("finished"));
    let finished = wait_until(&up.url, "finished", |j| {
        j["TransformJobStatus"] == "Completed"
    });
    assert_eq!(
        std::fs::read_to_string(sb.join("s3/restart-tests/out/finished/a.csv.out")).unwrap(),
        "3\n7\n"
    );
    let text = sb.logs("finished");
    assert!(
        text.contains("a.csv: 2 record(s) in 2 call(s)") && text.contains("serve: listening"),
        "{text}"
    );

    ok(&up.url, "CreateTransformJob", job("killed"));
    wait_until(&up.url, "killed", |j| j.get("TransformStartTime").is_some());
    let running = labelled_containers("label=sagedock.transform-job=killed");
    assert_eq!(running.len(), 1);
    up.signal("KILL");
    let up = Up::start(&sb).unwrap();
    let killed = describe(&up.url, "killed");
    assert_eq!(killed["TransformJobStatus"], "Failed", "{killed}");
    assert!(
        killed["FailureReason"]
            .as_str()
            .unwrap()
            .contains("not resumed after a restart"),
        "{killed}"
    );
    assert_eq!(
        describe(&up.url, "finished"),
        finished,
        "a finished job is as it was"
    );
    let t0 = Instant::now();
    while !labelled_containers("label=sagedock.transform-job=killed").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the killed run's container stays"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!sb.join("s3/restart-tests/out/killed/a.csv.out").exists());
    assert_eq!(up.signal("TERM"), Some(0));
}
