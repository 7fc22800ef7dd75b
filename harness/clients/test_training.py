"""Training jobs through boto3 with a bring-your-own image (sagedock/byo-train: a `train`
program, no SageMaker toolkit): the /opt/ml contract as the program sees it, statuses and
their transitions, metrics from the log, the model, output data and checkpoints in S3, the
log streams, a failing job, a crash, StopTrainingJob, MaxRuntimeInSeconds, a two-host job
whose hosts find each other, and the errors SageMaker gives for what it refuses."""

import io
import json
import re
import tarfile
import time
import urllib.request

import boto3
import botocore.exceptions
import pytest

from support import REGION, ROLE_ARN, error_of, require_image

BYO_IMAGE = "sagedock/byo-train:latest"
BUCKET = "training-tests"


@pytest.fixture(scope="session")
def byo_image():
    return require_image(BYO_IMAGE)


@pytest.fixture(scope="session")
def s3(sagedock):
    """S3 checks signatures: the key `sagedock up` prints."""
    return boto3.client("s3", endpoint_url=sagedock.url, region_name=REGION,
                        aws_access_key_id="sagedock", aws_secret_access_key="sagedock")


@pytest.fixture(scope="session")
def logs(make_client):
    return make_client("logs")


@pytest.fixture(scope="session")
def data(s3):
    """Two channels of CSV files in S3; returns their s3:// prefixes."""
    s3.create_bucket(Bucket=BUCKET)
    for key in ("data/train/a.csv", "data/train/part/b.csv", "data/validation/v.csv"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"1,2,3\n4,5,6\n")
    return {"train": f"s3://{BUCKET}/data/train/", "validation": f"s3://{BUCKET}/data/validation/"}


def job_request(name, hyperparameters=None, **overrides):
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": BYO_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE_ARN,
        "HyperParameters": hyperparameters or {},
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    request.update(overrides)
    return request


def wait_done(sm, name, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sm.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.5)
    pytest.fail(f"training job {name} still {job['TrainingJobStatus']} after {timeout} s: {job}")


def wait_secondary(sm, name, status, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sm.describe_training_job(TrainingJobName=name)
        if job["SecondaryStatus"] == status:
            return job
        time.sleep(0.2)
    pytest.fail(f"training job {name} never reached {status}: {job}")


def read_tar(s3, uri):
    bucket, key = uri[len("s3://"):].split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_a_job_runs_to_completed_with_its_model_metrics_and_logs(sm, s3, logs, data, byo_image, names,
                                                                 sagedock):
    name = names("job")
    request = job_request(
        name,
        {"mode": "ok", "epochs": "3"},
        InputDataConfig=[
            {"ChannelName": "train", "ContentType": "text/csv",
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": data["train"],
                                             "S3DataDistributionType": "FullyReplicated"}}},
            {"ChannelName": "validation", "InputMode": "FastFile",
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": data["validation"]}}},
        ],
        AlgorithmSpecification={
            "TrainingImage": BYO_IMAGE, "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "train:loss", "Regex": r"loss=(\S+);"},
                {"Name": "accuracy", "Regex": r"accuracy: ([0-9\.]+)"},
                {"Name": "validation:rmse", "Regex": r".*\[[0-9]+\].*#011validation-rmse:(\S+)"},
            ]},
        Environment={"CUSTOM": "yes"},
        CheckpointConfig={"S3Uri": f"s3://{BUCKET}/checkpoints/{name}"},
        Tags=[{"Key": "team", "Value": "ml"}],
    )
    arn = sm.create_training_job(**request)["TrainingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}"
    job = wait_done(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all("StatusMessage" in t and "StartTime" in t for t in job["SecondaryStatusTransitions"])
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]
    assert job["AlgorithmSpecification"]["TrainingImage"] == BYO_IMAGE
    assert job["ResourceConfig"]["InstanceCount"] == 1
    finals = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert finals == {"train:loss": pytest.approx(1 / 3, abs=1e-3), "accuracy": pytest.approx(0.8),
                      "validation:rmse": pytest.approx(0.25)}
    model_uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert model_uri == f"s3://{BUCKET}/output/{name}/output/model.tar.gz"
    model = json.loads(read_tar(s3, model_uri)["model.json"])
    assert model["channels"]["train"] == {"files": ["a.csv", "part/b.csv"], "mode": "File"}
    assert model["channels"]["validation"] == {"files": ["v.csv"], "mode": "FastFile"}
    assert model["env"] == {"TRAINING_JOB_NAME": name, "TRAINING_JOB_ARN": arn,
                            "AWS_REGION": "us-east-1", "CUSTOM": "yes"}
    assert model["hyperparameters"] == {"mode": "ok", "epochs": "3"}
    output = read_tar(s3, f"s3://{BUCKET}/output/{name}/output/output.tar.gz")
    assert output["report.txt"] == b"trained\n"
    ckpt = s3.get_object(Bucket=BUCKET, Key=f"checkpoints/{name}/epoch-last.ckpt")["Body"].read()
    assert ckpt == b"3"
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                        logStreamNamePrefix=name + "/")["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith(f"{name}/algo-1-")
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                 logStreamName=streams[0]["logStreamName"], startFromHead=True)["events"]
    text = "\n".join(e["message"] for e in events)
    assert "byo-train on algo-1 of ['algo-1']" in text and "done" in text
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    exposition = urllib.request.urlopen(sagedock.url + "/metrics").read().decode()
    sample = re.search(r'sagedock_training_metric\{TrainingJobName="%s",MetricName="accuracy"\} (\S+) (\d+)'
                       % re.escape(name), exposition)
    assert sample and float(sample.group(1)) == pytest.approx(0.8), exposition[-2000:]
    listed = sm.list_training_jobs(NameContains=names.token, StatusEquals="Completed")
    assert [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]] == [name]


def test_a_failing_job_reports_its_failure_file_and_a_crash_its_log(sm, data, byo_image, names):
    failing, crashing = names("fail"), names("crash")
    sm.create_training_job(**job_request(failing, {"mode": "fail"}))
    sm.create_training_job(**job_request(crashing, {"mode": "crash"}))
    job = wait_done(sm, failing)
    assert job["TrainingJobStatus"] == "Failed" and job["SecondaryStatus"] == "Failed"
    assert job["FailureReason"] == (
        "AlgorithmError: Bad hyperparameter: learning_rate must be positive, exit code: 3")
    job = wait_done(sm, crashing)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: ")
    assert "something broke" in job["FailureReason"] and job["FailureReason"].endswith("exit code: 2")


def test_stop_training_job_stops_it_and_keeps_what_it_saved(sm, s3, data, byo_image, names):
    name = names("stop")
    sm.create_training_job(**job_request(
        name, {"mode": "sleep"}, CheckpointConfig={"S3Uri": f"s3://{BUCKET}/checkpoints/{name}/"}))
    wait_secondary(sm, name, "Training")
    # Checkpoints reach S3 while the job runs (synced every 10 s), not only at its end.
    deadline = time.monotonic() + 30
    while True:
        try:
            body = s3.get_object(Bucket=BUCKET, Key=f"checkpoints/{name}/early.ckpt")["Body"].read()
            break
        except botocore.exceptions.ClientError:
            assert time.monotonic() < deadline, "no checkpoint in S3 within 30 s of training"
            time.sleep(0.5)
    assert body == b"saved while running"
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress"
    sm.stop_training_job(TrainingJobName=name)
    job = wait_done(sm, name)
    assert job["TrainingJobStatus"] == "Stopped" and job["SecondaryStatus"] == "Stopped"
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert statuses[-3:] == ["Stopping", "Uploading", "Stopped"], statuses
    saved = read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    assert saved["stopped.txt"] == b"stopped by signal 15"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.stop_training_job(TrainingJobName=name)
    assert error_of(e)[0] == "ValidationException"


def test_max_runtime_stops_the_job_as_max_runtime_exceeded(sm, byo_image, names):
    name = names("timeout")
    sm.create_training_job(**job_request(
        name, {"mode": "sleep"}, StoppingCondition={"MaxRuntimeInSeconds": 3}))
    job = wait_done(sm, name)
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_two_hosts_find_each_other_by_name(sm, s3, byo_image, names):
    name = names("cluster")
    sm.create_training_job(**job_request(
        name, {"mode": "cluster"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1}))
    job = wait_done(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    files = read_tar(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    first, second = json.loads(files["algo-1.json"]), json.loads(files["algo-2.json"])
    assert first["heard_from"] == ["algo-2"]
    assert first["hostname"] == "algo-1" and second["hostname"] == "algo-2"
    assert first["resolved"] == second["resolved"] and len(set(first["resolved"].values())) == 2


def test_what_sagemaker_refuses_is_refused_in_its_words(sm, data, byo_image, names):
    name = names("dup")
    sm.create_training_job(**job_request(name, {"mode": "fail"}))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_training_job(**job_request(name))
    code, message, _ = error_of(e)
    assert code == "ResourceInUse" and "must be unique" in message
    cases = [
        (job_request(names("pipe"), AlgorithmSpecification={"TrainingImage": BYO_IMAGE, "TrainingInputMode": "Pipe"}),
         "Pipe input mode"),
        (job_request(names("algo"), AlgorithmSpecification={"AlgorithmName": "xgboost", "TrainingInputMode": "File"}),
         "AlgorithmName"),
        (job_request(names("type"), ResourceConfig={"InstanceType": "ml.m5.lage", "InstanceCount": 1, "VolumeSizeInGB": 1}),
         "ml.m5.lage"),
        (job_request(names("regex"), AlgorithmSpecification={
            "TrainingImage": BYO_IMAGE, "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "acc", "Regex": "acc: ([0-9"}]}), "'acc'"),
    ]
    for request, words in cases:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sm.create_training_job(**request)
        code, message, _ = error_of(e)
        assert code == "ValidationException" and words in message, (code, message)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.describe_training_job(TrainingJobName=names("missing"))
    assert error_of(e)[:2] == ("ValidationException", "Requested resource not found.")
    missing = names("nodata")
    sm.create_training_job(**job_request(missing, InputDataConfig=[
        {"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/no/such/prefix/"}}}]))
    job = wait_done(sm, missing)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: Data download failed for channel 'train'")


# --------------------------------------------------------------------------- tuning


def tuning_request(name, ranges, strategy="Random", max_jobs=4, parallel=2, objective=("Maximize", "accuracy"),
                   static=None, **limits):
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": objective[0], "MetricName": objective[1]},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": parallel, **limits},
            "ParameterRanges": ranges,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": static or {},
            "AlgorithmSpecification": {
                "TrainingImage": BYO_IMAGE, "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "accuracy", "Regex": r"accuracy: ([0-9\.]+)"},
                                      {"Name": "train:loss", "Regex": r"loss=(\S+);"}]},
            "RoleArn": ROLE_ARN,
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/tuning"},
            "HyperParameterTuningResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                   "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }


def tuning_name(names, kind):
    return names(kind)[-32:].lstrip("-")


def wait_tuning(sm, name, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if job["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.5)
    pytest.fail(f"tuning job {name} still {job['HyperParameterTuningJobStatus']} after {timeout} s")


def test_a_grid_tuning_job_runs_every_combination_and_a_failed_trial_does_not_stop_it(
        sm, data, byo_image, names):
    name = tuning_name(names, "grid")
    ranges = {"CategoricalParameterRanges": [{"Name": "epochs", "Values": ["1", "3"]},
                                             {"Name": "mode", "Values": ["ok", "fail"]}]}
    request = tuning_request(name, ranges, strategy="Grid")
    del request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"]
    arn = sm.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{name}"
    job = wait_tuning(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"] == {"Completed": 2, "InProgress": 0, "RetryableError": 0,
                                                "NonRetryableError": 2, "Stopped": 0}
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 2, "Pending": 0, "Failed": 2}
    best = job["BestTrainingJob"]
    assert best["TunedHyperParameters"] == {"epochs": "3", "mode": "ok"}
    assert best["FinalHyperParameterTuningJobObjectiveMetric"] == {
        "Type": "Maximize", "MetricName": "accuracy", "Value": pytest.approx(0.8)}
    assert re.fullmatch(re.escape(name) + r"-00[1-4]-[0-9a-f]{8}", best["TrainingJobName"])
    static = job["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["_tuning_objective_metric"] == "accuracy"
    trial = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert trial["TuningJobArn"] == arn
    assert trial["HyperParameters"] == {"epochs": "3", "mode": "ok", "_tuning_objective_metric": "accuracy"}
    ranked = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, SortBy="FinalObjectiveMetricValue", SortOrder="Descending")
    summaries = ranked["TrainingJobSummaries"]
    assert [s["TunedHyperParameters"]["epochs"] for s in summaries] == ["3", "1"]
    everything = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert len(everything["TrainingJobSummaries"]) == 4
    failed = [s for s in everything["TrainingJobSummaries"] if s["TrainingJobStatus"] == "Failed"]
    assert all(s["ObjectiveStatus"] == "Failed" and "Bad hyperparameter" in s["FailureReason"] for s in failed)
    listed = sm.list_hyper_parameter_tuning_jobs(NameContains=names.token)["HyperParameterTuningJobSummaries"]
    assert [s["HyperParameterTuningJobName"] for s in listed] == [name]
    assert listed[0]["Strategy"] == "Grid"


def test_random_search_keeps_to_the_ranges_and_minimizes(sm, data, byo_image, names):
    name = tuning_name(names, "random")
    ranges = {"IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "6"}],
              "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.0001",
                                             "MaxValue": "0.1", "ScalingType": "Logarithmic"}]}
    sm.create_hyper_parameter_tuning_job(**tuning_request(
        name, ranges, max_jobs=3, parallel=3, objective=("Minimize", "train:loss"), static={"mode": "ok"}))
    job = wait_tuning(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name)["TrainingJobSummaries"]
    assert len(trials) == 3
    epochs = []
    for t in trials:
        tuned = t["TunedHyperParameters"]
        assert set(tuned) == {"epochs", "learning_rate"}
        assert 1 <= int(tuned["epochs"]) <= 6
        assert 0.0001 <= float(tuned["learning_rate"]) <= 0.1
        epochs.append(int(tuned["epochs"]))
    # loss = 1/epochs: the best trial is the one with the most epochs.
    assert int(job["BestTrainingJob"]["TunedHyperParameters"]["epochs"]) == max(epochs)


def test_stopping_a_tuning_job_stops_its_running_trials(sm, byo_image, names):
    name = tuning_name(names, "stop")
    ranges = {"IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "3"}]}
    sm.create_hyper_parameter_tuning_job(**tuning_request(
        name, ranges, max_jobs=4, parallel=2, static={"mode": "sleep"}))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name)["TrainingJobSummaries"]
        statuses = [sm.describe_training_job(TrainingJobName=t["TrainingJobName"])["SecondaryStatus"]
                    for t in trials]
        if statuses.count("Training") == 2:
            break
        time.sleep(0.5)
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name)["HyperParameterTuningJobStatus"] in ("Stopping", "Stopped")
    job = wait_tuning(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    assert job["TrainingJobStatusCounters"]["Stopped"] == 2
    assert job["TrainingJobStatusCounters"]["InProgress"] == 0
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name)["TrainingJobSummaries"]
    assert len(trials) == 2, "no trial starts after the stop"


def test_what_sagemaker_refuses_in_a_tuning_job_is_refused(sm, byo_image, names):
    integer = {"IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "3"}]}
    cases = [
        (tuning_request(tuning_name(names, "band"), integer, strategy="Hyperband"), "Hyperband"),
        (tuning_request(tuning_name(names, "metric"), integer, objective=("Maximize", "f1")),
         "'f1' is not one of the algorithm's MetricDefinitions"),
        (tuning_request(tuning_name(names, "gridint"), integer, strategy="Grid"), "only categorical"),
        (tuning_request(tuning_name(names, "log"), {"ContinuousParameterRanges": [
            {"Name": "lr", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}]}), "positive"),
        (tuning_request(tuning_name(names, "revint"), {"IntegerParameterRanges": [
            {"Name": "n", "MinValue": "1", "MaxValue": "3", "ScalingType": "ReverseLogarithmic"}]}),
         "only for continuous"),
    ]
    for request, words in cases:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sm.create_hyper_parameter_tuning_job(**request)
        code, message, _ = error_of(e)
        assert code == "ValidationException" and words in message, (code, message)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="no-such-tuning-job")
    assert error_of(e)[0] == "ResourceNotFound"
