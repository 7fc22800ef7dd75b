"""`sagedock bench` against an endpoint deployed through boto3 on `sagedock up`: its JSON
report validates against fixtures/bench/report.schema.json, for a run that succeeds and for
one whose every request fails."""

import json
import subprocess

import jsonschema
import pytest

from support import (REPO, ROLE_ARN, cleanup, sagedock_bin, unique_name, variant,
                     wait_in_service)

SCHEMA = json.loads((REPO / "fixtures" / "bench" / "report.schema.json").read_text())


@pytest.fixture(scope="module")
def endpoint(sm, echo_image):
    model, config, name = unique_name("bench-model"), unique_name("bench-config"), unique_name("bench-ep")
    try:
        sm.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN,
                        PrimaryContainer={"Image": echo_image, "Environment": {"ECHO_QUIET": "1"}})
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant(model)])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
        wait_in_service(sm, name)
        yield name
    finally:
        cleanup(sm, endpoints=[name], configs=[config], models=[model])


@pytest.fixture(scope="module")
def two_variants(sm, echo_image):
    """Variants Heavy (weight 3) and Light (weight 1), one echo instance each."""
    heavy, light = unique_name("bench-heavy"), unique_name("bench-light")
    config, name = unique_name("bench-wconfig"), unique_name("bench-wep")
    try:
        for model in (heavy, light):
            sm.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN,
                            PrimaryContainer={"Image": echo_image, "Environment": {"ECHO_QUIET": "1"}})
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[
            variant(heavy, name="Heavy", weight=3.0), variant(light, name="Light", weight=1.0)])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
        wait_in_service(sm, name)
        yield name
    finally:
        cleanup(sm, endpoints=[name], configs=[config], models=[heavy, light])


def bench(sagedock, *args):
    done = subprocess.run([str(sagedock_bin()), "bench", "--endpoint-url", sagedock.url,
                           "--warmup", "200ms", "--json", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    return done.returncode, report


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_open_loop_report(sagedock, endpoint):
    code, report = bench(sagedock, "--endpoint", endpoint, "--rate", "200", "-c", "4", "-d", "1s",
                         "--body-text", '{"instances": [1]}')
    assert code == 0, report
    assert report["mode"] == "open" and report["rate"] == 200
    assert report["unsent"] == 0 and report["failed"] == 0
    # 200/s for 1 s, give or take the requests in flight at the window's edges.
    assert 190 <= report["ok"] <= 202, report
    percentiles = [p for p, _ in report["latency_ms"]["distribution"]]
    assert percentiles == sorted(percentiles) and percentiles[-1] == 100


def test_failed_run_report(sagedock, endpoint):
    code, report = bench(sagedock, "--endpoint", endpoint, "-d", "500ms",
                         "--custom-attributes", "status=503")
    assert code == 1
    assert report["ok"] == 0 and report["latency_ms"] is None
    assert set(report["failures"]) == {"424 ModelError (503)"}, report


def test_answers_by_variant_follow_the_weights(sagedock, two_variants):
    code, report = bench(sagedock, "--endpoint", two_variants, "-c", "4", "-d", "2s")
    assert code == 0, report
    variants = report["variants"]
    assert set(variants) == {"Heavy", "Light"}, report
    assert sum(v["ok"] for v in variants.values()) == report["ok"]
    # Thousands of calls at weights 3:1.
    assert report["ok"] > 1000, report
    assert abs(variants["Heavy"]["share"] - 0.75) < 0.05, variants
