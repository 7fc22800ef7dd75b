"""Batch transform through boto3 with the bring-your-own image (sagedock/byo-train's
`serve`: an HTTP server, no toolkit, that sums the numbers of each record): SingleRecord
and MultiRecord packing, the batch environment and /execution-parameters, gzip input, a
manifest, DataProcessing (filters and a join), an inference pipeline, a record the
container refuses, an oversize record, StopTransformJob mid-way, a two-instance job, the
job's log streams, and the errors SageMaker gives for what it refuses."""

import gzip
import json
import time

import boto3
import pytest

from support import REGION, ROLE_ARN, error_of, require_image

BYO_IMAGE = "sagedock/byo-train:latest"
BUCKET = "transform-tests"
GROUP = "/aws/sagemaker/TransformJobs"


@pytest.fixture(scope="session")
def byo_image():
    return require_image(BYO_IMAGE)


@pytest.fixture(scope="session")
def s3(sagedock):
    """S3 checks signatures: the key `sagedock up` prints."""
    client = boto3.client("s3", endpoint_url=sagedock.url, region_name=REGION,
                          aws_access_key_id="sagedock", aws_secret_access_key="sagedock")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="session")
def logs(make_client):
    return make_client("logs")


def put(s3, key, body):
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def get(s3, key):
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def keys(s3, prefix):
    found = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in found)


def make_model(sm, name, environment=None, containers=1):
    container = {"Image": BYO_IMAGE, "Environment": environment or {}}
    request = {"ModelName": name, "ExecutionRoleArn": ROLE_ARN}
    if containers == 1:
        request["PrimaryContainer"] = container
    else:
        request["Containers"] = [dict(container, ContainerHostname=f"step{i}")
                                 for i in range(containers)]
    sm.create_model(**request)
    return name


def job_request(name, model, input_uri, output_prefix, **overrides):
    request = {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/{output_prefix}",
                            "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(request.get(key), dict):
            request[key] = {**request[key], **value}
        else:
            request[key] = value
    return request


def wait_done(sm, name, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sm.describe_transform_job(TransformJobName=name)
        if job["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.3)
    pytest.fail(f"transform job {name} still {job['TransformJobStatus']} after {timeout} s: {job}")


def data_log(logs, name):
    events = logs.get_log_events(logGroupName=GROUP, logStreamName=f"{name}/data-log",
                                 startFromHead=True)["events"]
    return [e["message"] for e in events]


ROWS = b"1,2,3\n4,5,6\n\n7,8,9\n10,11,12"  # a blank line is no record; no final newline


def test_multi_record_packs_records_and_the_output_keeps_their_order(sm, s3, logs, byo_image,
                                                                    names):
    model = make_model(sm, names("model"), {"BYO_BATCH_SIZE": "1"})
    put(s3, "multi/in/a.csv", ROWS)
    put(s3, "multi/in/sub/b.csv", b"100,1\n")
    name = names("job")
    request = job_request(name, model, f"s3://{BUCKET}/multi/in/", "multi/out",
                          BatchStrategy="MultiRecord", MaxPayloadInMB=1,
                          Tags=[{"Key": "team", "Value": "ml"}])
    arn = sm.create_transform_job(**request)["TransformJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}"
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TransformStartTime"] <= job["TransformEndTime"]
    assert job["BatchStrategy"] == "MultiRecord" and job["MaxPayloadInMB"] == 1
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    # One .out per object, the sub-path under the prefix kept; four records, one call.
    assert keys(s3, "multi/out/") == ["multi/out/a.csv.out", "multi/out/sub/b.csv.out"]
    assert get(s3, "multi/out/a.csv.out") == b"6;n=4\n15;n=4\n24;n=4\n33;n=4\n"
    assert get(s3, "multi/out/sub/b.csv.out") == b"101;n=1\n"
    lines = data_log(logs, name)
    assert "MaxConcurrentTransforms=1, MaxPayloadInMB=1, BatchStrategy=MULTI_RECORD" in lines
    assert any(l.startswith("a.csv: 4 record(s) in 1 call(s)") for l in lines), lines
    streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=f"{name}/")
    names_ = [s["logStreamName"] for s in streams["logStreams"]]
    assert f"{name}/data-log" in names_ and len(names_) == 2, names_
    listed = sm.list_transform_jobs(NameContains=name)["TransformJobSummaries"]
    assert [(j["TransformJobName"], j["TransformJobStatus"]) for j in listed] == [(name, "Completed")]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_single_record_sends_each_record_alone(sm, s3, byo_image, names):
    model = make_model(sm, names("model"), {"BYO_BATCH_SIZE": "1"})
    put(s3, "single/in/a.csv", ROWS)
    name = names("job")
    sm.create_transform_job(**job_request(name, model, f"s3://{BUCKET}/single/in/a.csv",
                                          "single/out", BatchStrategy="SingleRecord",
                                          MaxConcurrentTransforms=3))
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert get(s3, "single/out/a.csv.out") == b"6;n=1\n15;n=1\n24;n=1\n33;n=1\n"


def test_the_container_sees_the_batch_environment_and_its_execution_parameters_apply(
        sm, s3, logs, byo_image, names):
    offered = {"MaxConcurrentTransforms": 2, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 3}
    model = make_model(sm, names("model"), {"BYO_EXECUTION_PARAMETERS": json.dumps(offered),
                                            "BYO_BATCH_SIZE": "1", "MODEL_ONLY": "m"})
    put(s3, "env/in/a.csv", b"1,1\n2,2\n")
    name = names("job")
    sm.create_transform_job(**job_request(name, model, f"s3://{BUCKET}/env/in/", "env/out",
                                          Environment={"BYO_FROM_JOB": "yes"}))
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert get(s3, "env/out/a.csv.out") == b"2;n=1\n4;n=1\n"
    assert "MaxConcurrentTransforms=2, MaxPayloadInMB=3, BatchStrategy=SINGLE_RECORD " \
           "(the container's /execution-parameters filled what the request left unset)" \
           in data_log(logs, name)
    # What the container's environment holds: SplitType None, the object is one call.
    name = names("env")
    sm.create_transform_job(**job_request(
        name, model, f"s3://{BUCKET}/env/in/", "env/vars",
        TransformInput={"ContentType": "application/x-sagedock-env", "SplitType": "None"},
        TransformOutput={"AssembleWith": "None"},
        MaxPayloadInMB=4, BatchStrategy="MultiRecord", MaxConcurrentTransforms=1,
        Environment={"BYO_FROM_JOB": "yes"}))
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    env = json.loads(get(s3, "env/vars/a.csv.out"))
    assert env["SAGEMAKER_BATCH"] == "true"
    assert env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "4"
    assert env["SAGEMAKER_BATCH_STRATEGY"] == "MULTI_RECORD"
    assert env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "1"
    assert env["BYO_FROM_JOB"] == "yes"


def test_gzip_input_and_a_manifest(sm, s3, byo_image, names):
    model = make_model(sm, names("model"))
    put(s3, "gz/in/a.csv.gz", gzip.compress(b"1,2\n3,4\n"))
    name = names("gzip")
    sm.create_transform_job(**job_request(name, model, f"s3://{BUCKET}/gz/in/", "gz/out",
                                          TransformInput={"CompressionType": "Gzip"}))
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert get(s3, "gz/out/a.csv.gz.out") == b"3\n7\n"

    put(s3, "man/data/x.csv", b"5,5\n")
    put(s3, "man/data/deep/y.csv", b"1,1\n")
    put(s3, "man/data/z.csv", b"9,9\n")  # not listed: not transformed
    manifest = put(s3, "man/list.manifest", json.dumps(
        [{"prefix": f"s3://{BUCKET}/man/data/"}, "x.csv", "deep/y.csv"]).encode())
    name = names("manifest")
    sm.create_transform_job(**job_request(
        name, model, manifest, "man/out",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile",
                                                        "S3Uri": manifest}}}))
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert keys(s3, "man/out/") == ["man/out/deep/y.csv.out", "man/out/x.csv.out"]
    assert get(s3, "man/out/x.csv.out") == b"10\n"


def test_data_processing_filters_and_joins_csv_records(sm, s3, byo_image, names):
    model = make_model(sm, names("model"))
    put(s3, "dp/in/a.csv", b"id1,1,2\nid2,3,4\n")
    name = names("job")
    sm.create_transform_job(**job_request(
        name, model, f"s3://{BUCKET}/dp/in/", "dp/out",
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}))
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["DataProcessing"]["JoinSource"] == "Input"
    assert get(s3, "dp/out/a.csv.out") == b"id1,3\nid2,7\n"


def test_an_inference_pipeline_transforms_through_every_container(sm, s3, byo_image, names):
    model = make_model(sm, names("model"), containers=2)
    put(s3, "pipe/in/a.csv", b"1,2\n3,4\n")
    name = names("job")
    sm.create_transform_job(**job_request(name, model, f"s3://{BUCKET}/pipe/in/", "pipe/out"))
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    # The first sums each row; the second sums those one-field rows again.
    assert get(s3, "pipe/out/a.csv.out") == b"3\n7\n"


def test_a_refused_record_fails_the_job_and_the_other_objects_are_still_written(
        sm, s3, logs, byo_image, names):
    model = make_model(sm, names("model"))
    put(s3, "bad/in/a.csv", b"1,2\n")
    put(s3, "bad/in/b.csv", b"3,4\nbad,record\n5,6\n")
    put(s3, "bad/in/c.csv", b"7,8\n")
    name = names("job")
    sm.create_transform_job(**job_request(name, model, f"s3://{BUCKET}/bad/in/", "bad/out",
                                          BatchStrategy="SingleRecord"))
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith("ClientError: b.csv: "), reason
    assert "answered 400 for record 2: cannot score record: bad,record" in reason, reason
    assert keys(s3, "bad/out/") == ["bad/out/a.csv.out", "bad/out/c.csv.out"]
    assert any(l.startswith("[sagemaker logs]: b.csv: ") for l in data_log(logs, name))


def test_a_record_over_max_payload_fails_its_object(sm, s3, byo_image, names):
    model = make_model(sm, names("model"))
    put(s3, "big/in/a.csv", b"1\n" + b"2" * (1024 * 1024 + 10) + b"\n")
    name = names("job")
    sm.create_transform_job(**job_request(name, model, f"s3://{BUCKET}/big/in/", "big/out",
                                          MaxPayloadInMB=1))
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Failed"
    assert "record 2 is 1048587 bytes, larger than MaxPayloadInMB (1 MB)" in job["FailureReason"]
    assert keys(s3, "big/out/") == []


def test_stop_transform_job_mid_way(sm, s3, byo_image, names):
    model = make_model(sm, names("model"), {"BYO_DELAY": "1"})
    put(s3, "stop/in/a.csv", b"".join(b"%d,1\n" % i for i in range(60)))
    name = names("job")
    sm.create_transform_job(**job_request(name, model, f"s3://{BUCKET}/stop/in/", "stop/out",
                                          BatchStrategy="SingleRecord"))
    deadline = time.monotonic() + 120
    while sm.describe_transform_job(TransformJobName=name).get("TransformStartTime") is None:
        assert time.monotonic() < deadline, "the job never started transforming"
        time.sleep(0.2)
    sm.stop_transform_job(TransformJobName=name)
    assert sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"] in (
        "Stopping", "Stopped")
    job = wait_done(sm, name, timeout=60)
    assert job["TransformJobStatus"] == "Stopped"
    assert keys(s3, "stop/out/") == []
    with pytest.raises(sm.exceptions.ClientError) as e:
        sm.stop_transform_job(TransformJobName=name)
    assert error_of(e)[0] == "ValidationException"


def test_two_instances_share_the_objects(sm, s3, logs, byo_image, names):
    model = make_model(sm, names("model"))
    for i in range(4):
        put(s3, f"two/in/{i}.csv", b"%d,%d\n" % (i, i))
    name = names("job")
    sm.create_transform_job(**job_request(
        name, model, f"s3://{BUCKET}/two/in/", "two/out",
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 2}))
    job = wait_done(sm, name)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert [get(s3, f"two/out/{i}.csv.out") for i in range(4)] == [b"0\n", b"2\n", b"4\n", b"6\n"]
    streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=f"{name}/")
    containers = [s["logStreamName"] for s in streams["logStreams"]
                  if not s["logStreamName"].endswith("/data-log")]
    assert len(containers) == 2, containers


def test_requests_sagemaker_refuses(sm, s3, byo_image, names):
    model = make_model(sm, names("model"))
    uri = f"s3://{BUCKET}/refused/in/"

    def refused(**overrides):
        with pytest.raises(sm.exceptions.ClientError) as e:
            sm.create_transform_job(**job_request(names("job"), model, uri, "refused/out",
                                                  **overrides))
        return error_of(e)

    code, message, status = refused(ModelName="no-such-model")
    assert (code, status) == ("ValidationException", 400)
    assert message == ('Could not find model "arn:aws:sagemaker:us-east-1:123456789012:'
                       'model/no-such-model".')
    code, message, _ = refused(MaxPayloadInMB=50, MaxConcurrentTransforms=4)
    assert "times MaxPayloadInMB (50) is more than 100" in message
    code, message, _ = refused(DataProcessing={"OutputFilter": "SageMakerOutput"})
    assert code == "ValidationException" and "must begin with $" in message
    code, message, _ = refused(TransformInput={"ContentType": "image/png"},
                               DataProcessing={"JoinSource": "Input"})
    assert "must be text/csv, application/json or application/jsonlines" in message
    code, message, _ = refused(TransformResources={"InstanceType": "ml.nope.large",
                                                   "InstanceCount": 1})
    assert code == "ValidationException"
    code, message, _ = refused(BatchStrategy="Sometimes")
    assert code == "ValidationException" and "at 'batchStrategy'" in message
    name = names("dup")
    put(s3, "refused/in/a.csv", b"1\n")
    sm.create_transform_job(**job_request(name, model, uri, "refused/out"))
    with pytest.raises(sm.exceptions.ClientError) as e:
        sm.create_transform_job(**job_request(name, model, uri, "refused/out"))
    assert error_of(e)[0] == "ResourceInUse"
    wait_done(sm, name)
    with pytest.raises(sm.exceptions.ClientError) as e:
        sm.describe_transform_job(TransformJobName="no-such-job")
    assert error_of(e)[0] == "ValidationException"
