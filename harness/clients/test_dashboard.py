"""The dashboard at / of `sagedock up`, in a real browser (Debian's chromium, headless,
driven through chromium-driver by Selenium), and the page `sagedock bench --html` writes.

What a user would look at: an endpoint listed InService; its latency chart moving while a
bench runs; a Failed endpoint's reason next to its log tail; the request form answering
with the container's answer; a model's findings and SavedModel signatures; a training
job's status and log. Every page must load with no console error. Screenshots are kept in
target/test-artifacts/dashboard/ (the README's come from there).
"""

import json
import shutil
import subprocess
import time

import pytest

from support import (REPO, ROLE_ARN, TENSORFLOW_FIXTURE, cleanup, in_ci, pack, sagedock_bin,
                     unique_name, variant, wait_in_service)

ARTIFACTS = REPO / "target" / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 20


@pytest.fixture(scope="module")
def browser():
    """Headless chromium through chromium-driver; skipped (failed under CI=true) when
    Debian's chromium and chromium-driver are not installed."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        why = (f"{', '.join(missing)} not found: `apt-get install chromium chromium-driver` "
               "(harness/ci/browser.sh does it)")
        if in_ci():
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1100", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def no_console_errors(request):
    """After each test, the browser's console has no error (a failed request included)."""
    yield
    if "browser" not in request.fixturenames:
        return
    driver = request.getfixturevalue("browser")
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"console errors: {json.dumps(errors, indent=1)}"


def open_page(driver, url):
    """Loads `url` and waits until the page says its first render is done."""
    driver.get(url)
    wait_for(driver, lambda d: d.find_element("css selector", "body").get_attribute("data-ready") == "true",
             f"{url} to finish its first render")


def wait_for(driver, condition, what, timeout=WAIT_S):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition(driver)
            if value:
                return value
        except (NoSuchElementException, StaleElementReferenceException):
            pass
        time.sleep(0.2)
    shot = ARTIFACTS / f"timeout-{int(time.time())}.png"
    driver.save_screenshot(str(shot))
    pytest.fail(f"waited {timeout} s for {what} (screenshot {shot})", pytrace=False)


def full_page_screenshot(driver, path, width=1300):
    """The whole page, however long, then the window as it was."""
    driver.set_window_size(width, 1100)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(height + 40, 4000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1300, 1100)


def css(driver, selector):
    return driver.find_element("css selector", selector)


@pytest.fixture(scope="module")
def endpoint(sm, echo_image):
    """An echo endpoint with two variants, InService."""
    models = [unique_name("dash-a"), unique_name("dash-b")]
    config, name = unique_name("dash-config"), unique_name("dash-ep")
    try:
        for model in models:
            sm.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN,
                            PrimaryContainer={"Image": echo_image, "Environment": {"ECHO_QUIET": "1"}})
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[
            variant(models[0], name="Blue", weight=1.0), variant(models[1], name="Green", weight=1.0)])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
        wait_in_service(sm, name)
        yield name
    finally:
        cleanup(sm, endpoints=[name], configs=[config], models=models)


def test_the_overview_lists_the_endpoint_in_service(browser, sagedock, endpoint):
    open_page(browser, f"{sagedock.url}/#/")
    status = wait_for(browser, lambda d: css(d, f'tr[data-endpoint="{endpoint}"] span.status'),
                      f"{endpoint}'s row")
    wait_for(browser, lambda d: status.text == "InService", f"{endpoint} InService")
    browser.save_screenshot(str(ARTIFACTS / "overview.png"))


def test_the_latency_chart_moves_while_a_bench_runs(browser, sagedock, endpoint):
    open_page(browser, f"{sagedock.url}/#/endpoints/{endpoint}")
    assert css(browser, "#endpoint-status").text == "InService"
    # The containers behind each instance, with the engine's figures.
    rows = browser.find_elements("css selector", "#containers tr[data-container]")
    assert len(rows) == 2, [r.text for r in rows]
    chart = css(browser, 'canvas.chart[data-chart="invocations"]')
    before = int(chart.get_attribute("data-samples") or 0)
    bench = subprocess.Popen(
        [str(sagedock_bin()), "bench", "--endpoint", endpoint, "--endpoint-url", sagedock.url,
         "-c", "2", "-d", "8s", "--warmup", "0s", "--body-text", "{}", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(browser, lambda d: float(chart.get_attribute("data-latest") or 0) > 0,
                 "invocations per second above 0 on the chart")
        latency = css(browser, 'canvas.chart[data-chart="model-latency"]')
        wait_for(browser, lambda d: float(latency.get_attribute("data-latest") or 0) > 0,
                 "a model latency on the chart")
        time.sleep(5)
        full_page_screenshot(browser, ARTIFACTS / "endpoint.png")
    finally:
        _, err = bench.communicate(timeout=60)
    assert bench.returncode == 0, err
    assert int(chart.get_attribute("data-samples")) > before + 2


def test_the_request_form_returns_the_containers_answer(browser, sagedock, endpoint):
    open_page(browser, f"{sagedock.url}/#/endpoints/{endpoint}")
    body = css(browser, "#invoke-body")
    body.clear()
    body.send_keys('{"hello": "dashboard"}')
    content_type = css(browser, "#invoke-content-type")
    content_type.clear()
    content_type.send_keys("application/json")
    from selenium.webdriver.support.ui import Select
    Select(css(browser, "#invoke-target-variant")).select_by_value("Green")
    css(browser, "#invoke-send").click()
    wait_for(browser, lambda d: css(d, "#invoke-status").text == "200", "the answer's status 200")
    # The echo container answers with the request.
    assert '"hello"' in css(browser, "#invoke-response").text
    headers = css(browser, "#invoke-headers").text.lower()
    assert "x-amzn-invoked-production-variant" in headers and "green" in headers, headers
    assert css(browser, "#invoke-latency").text.endswith("ms")


def test_a_failed_endpoint_shows_its_reason_and_log_tail(browser, sagedock, sm, echo_image):
    model, config, name = unique_name("dash-doomed"), unique_name("dash-dconfig"), unique_name("dash-dep")
    try:
        sm.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN,
                        PrimaryContainer={"Image": echo_image, "Environment": {"ECHO_FAIL_AT_START": "3"}})
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant(model)])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
        deadline = time.monotonic() + 120
        while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Creating":
            assert time.monotonic() < deadline, "still Creating after 120 s"
            time.sleep(0.5)
        open_page(browser, f"{sagedock.url}/#/endpoints/{name}")
        assert css(browser, "#endpoint-status").text == "Failed"
        assert "exited with code 3" in css(browser, "#failure-reason").text
        tail = wait_for(browser, lambda d: css(d, "pre#log-tail").text, "the log tail")
        assert "failing at start on purpose" in tail, tail
        browser.save_screenshot(str(ARTIFACTS / "failed.png"))
    finally:
        cleanup(sm, endpoints=[name], configs=[config], models=[model])


def test_a_model_shows_its_findings_and_signatures(browser, sagedock, sm):
    name = unique_name("dash-tf")
    pack(TENSORFLOW_FIXTURE, sagedock.s3_root / "dashboard" / "tf.tar.gz")
    try:
        sm.create_model(ModelName=name, ExecutionRoleArn=ROLE_ARN, PrimaryContainer={
            "Image": "sagedock/tensorflow:latest", "ModelDataUrl": "s3://dashboard/tf.tar.gz"})
        open_page(browser, f"{sagedock.url}/#/models/{name}")
        signatures = css(browser, "table#signatures").text
        assert "serving_default" in signatures and "float32" in signatures, signatures
        codes = [li.get_attribute("data-code")
                 for li in browser.find_elements("css selector", "#findings li")]
        assert "tf.signature" in codes, codes
        browser.save_screenshot(str(ARTIFACTS / "model.png"))
    finally:
        cleanup(sm, models=[name])


def test_a_training_job_shows_its_status_and_log(browser, sagedock, sm):
    from support import require_image
    image = require_image("sagedock/byo-train:latest")
    name = unique_name("dash-train")
    (sagedock.s3_root / "dashboard").mkdir(parents=True, exist_ok=True)
    sm.create_training_job(
        TrainingJobName=name, RoleArn=ROLE_ARN,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://dashboard/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 300})
    open_page(browser, f"{sagedock.url}/#/training-jobs/{name}")
    wait_for(browser, lambda d: css(d, "#job-status").text == "Completed", "the job Completed",
             timeout=120)
    log = wait_for(browser, lambda d: css(d, "pre#log").text, "the job's log")
    assert "byo-train on algo-1" in log, log
    open_page(browser, f"{sagedock.url}/#/")
    wait_for(browser, lambda d: css(d, f'tr[data-training-job="{name}"] span.status').text == "Completed",
             "the job on the overview")


def test_a_bench_report_renders_with_the_numbers_of_its_json(browser, sagedock, endpoint, tmp_path):
    page = tmp_path / "report.html"
    done = subprocess.run(
        [str(sagedock_bin()), "bench", "--endpoint", endpoint, "--endpoint-url", sagedock.url,
         "-c", "2", "-d", "2s", "--warmup", "200ms", "--body-text", "{}", "--json",
         "--html", str(page), "--compare-direct"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    browser.get(page.as_uri())
    for run, values in ((":not([data-run])", report), ('[data-run="direct"]', report["direct"])):
        cells = browser.find_elements("css selector", f"#summary td[data-field]{run}")
        assert len(cells) == 12, [c.text for c in cells]
        for cell in cells:
            field = cell.get_attribute("data-field")
            expected = values[field] if field in values else values["latency_ms"][field]
            shown = float(cell.text)
            assert abs(shown - expected) <= max(0.006, abs(expected) * 0.001), (field, shown, expected)
    # The plots are drawn: each SVG has a size and at least one line.
    charts = browser.find_elements("css selector", "svg.chart")
    assert len(charts) == 6, len(charts)  # the curve, latency, 2xx, failures; two by variant
    for chart in charts:
        assert chart.size["height"] > 100
    assert browser.find_elements("css selector", "svg.chart polyline")
    full_page_screenshot(browser, ARTIFACTS / "bench-report.png", width=820)
