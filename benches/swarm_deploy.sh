#!/usr/bin/env bash
# An endpoint on a Docker Swarm against the same endpoint on one engine, in one run.
#
#   bash benches/swarm_deploy.sh [ROUNDS] [INSTANCES]      (defaults 3 and 6)
#
# Stands the three-node swarm up (harness/swarm/up.sh), then ROUNDS times, alternately on
# one engine (the host's Docker) and on the swarm (`up --engine swarm`): creates an echo
# endpoint of INSTANCES instances with the scikit-learn fixture as its model data, and
# times CreateEndpoint to InService. On the swarm it also times, per round, the recovery
# from a killed task (its container killed on its node: until a new instance answers) and
# from a stopped node (the node's container stopped: until every instance runs on the
# nodes left). Prints each figure per round and their medians. Uses the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
instances="${2:-6}"
cargo build --quiet --features aws-sdk-tests
bash harness/images/build-all.sh >/dev/null 2>&1
eval "$(bash harness/swarm/up.sh sagedock/echo:latest 2>/dev/null | sed 's/^/export SWARM_/')"
work="$(mktemp -d /tmp/sagedock-swarm-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/s3/bucket"
target/debug/sagedock pack fixtures/models/sklearn -o "$work/s3/bucket/model.tar.gz" >/dev/null
python="${SAGEDOCK_CLIENTS_VENV:-$HOME/.cache/sagedock/clients-venv}/bin/python"
[[ -x "$python" ]] || python=python3
SAGEDOCK_BIN="$PWD/target/debug/sagedock" WORK="$work" ROUNDS="$rounds" INSTANCES="$instances" \
    "$python" - <<'EOF'
import json, os, signal, statistics, subprocess, time, urllib.request

work, rounds, n = os.environ["WORK"], int(os.environ["ROUNDS"]), int(os.environ["INSTANCES"])
swarm_host, registry = os.environ["SWARM_DOCKER_HOST"], os.environ["SWARM_SAGEDOCK_REGISTRY"]

def up(tag, extra, env):
    data = f"{work}/{tag}-data"
    p = subprocess.Popen([os.environ["SAGEDOCK_BIN"], "up", "--port", "0", "--data-dir", data,
                          "--s3-root", f"{work}/s3", "--health-check-interval", "1s", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, **env})
    for line in p.stdout:
        if line.startswith("listening on "):
            return p, line.split()[-1]
    raise SystemExit(f"sagedock up ({tag}) did not start")

def call(url, op, body):
    req = urllib.request.Request(url + "/", json.dumps(body).encode(), {
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"SageMaker.{op}"})
    return json.load(urllib.request.urlopen(req))

def invoke(url, name):
    req = urllib.request.Request(f"{url}/endpoints/{name}/invocations", b"ping", {
        "Content-Type": "text/plain", "X-Amzn-SageMaker-Custom-Attributes": "report=1"})
    try:
        return json.load(urllib.request.urlopen(req, timeout=5)).get("hostname")
    except Exception:
        return None

def status(url, name):
    return call(url, "DescribeEndpoint", {"EndpointName": name})["EndpointStatus"]

def deploy(url, name):
    call(url, "CreateModel", {"ModelName": name, "ExecutionRoleArn": "arn:aws:iam::123456789012:role/R",
         "PrimaryContainer": {"Image": "sagedock/echo:latest", "ModelDataUrl": "s3://bucket/model.tar.gz",
                              "Environment": {"ECHO_QUIET": "1"}}})
    call(url, "CreateEndpointConfig", {"EndpointConfigName": name, "ProductionVariants": [{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": n,
        "InstanceType": "ml.t2.medium"}]})
    t0 = time.monotonic()
    call(url, "CreateEndpoint", {"EndpointName": name, "EndpointConfigName": name})
    while (s := status(url, name)) == "Creating":
        time.sleep(0.05)
    assert s == "InService", s
    return time.monotonic() - t0

def docker(host, *args):
    return subprocess.check_output(["docker", *args], env={**os.environ, "DOCKER_HOST": host}, text=True)

def tasks(name):
    ids = docker(swarm_host, "service", "ls", "-q", "--filter", f"label=sagedock.endpoint={name}").split()
    out = docker(swarm_host, "service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", *ids).split()
    return [json.loads(docker(swarm_host, "inspect", t))[0] for t in out]

def node_name(task):
    return docker(swarm_host, "node", "inspect", "-f", "{{.Description.Hostname}}", task["NodeID"]).strip()

def until(cond, what, limit=180):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > limit:
            raise SystemExit(f"{what}: not within {limit} s")
        time.sleep(0.05)
    return time.monotonic() - t0

one, swarm, task_kill, node_stop = [], [], [], []
local, local_url = up("one", [], {})
clustered, swarm_url = up("swarm", ["--engine", "swarm", "--registry", registry], {"DOCKER_HOST": swarm_host})
try:
    for r in range(rounds):
        one.append(deploy(local_url, f"one-{r}"))
        call(local_url, "DeleteEndpoint", {"EndpointName": f"one-{r}"})
        name = f"swarm-{r}"
        swarm.append(deploy(swarm_url, name))
        # A killed task: until an instance that did not answer before answers.
        before = {invoke(swarm_url, name) for _ in range(4 * n)}
        victim = tasks(name)[0]
        t0 = time.monotonic()
        docker(f"unix:///run/sagedock-swarm/{node_name(victim)}.sock", "kill",
               victim["Status"]["ContainerStatus"]["ContainerID"])
        until(lambda: invoke(swarm_url, name) not in before | {None}, "a killed task's replacement")
        task_kill.append(time.monotonic() - t0)
        # A stopped node: until every instance runs on the nodes left.
        node = "sagedock-swarm-3"
        t0 = time.monotonic()
        subprocess.check_call(["docker", "stop", "-t", "0", node], stdout=subprocess.DEVNULL)
        until(lambda: len(ts := tasks(name)) == n and all(node_name(t) != node for t in ts), "a stopped node's instances elsewhere")
        node_stop.append(time.monotonic() - t0)
        subprocess.check_call(["docker", "start", node], stdout=subprocess.DEVNULL)
        call(swarm_url, "DeleteEndpoint", {"EndpointName": name})
        until(lambda: "Ready\n" * 3 == "".join(sorted(
            l + "\n" for l in docker(swarm_host, "node", "ls", "--format", "{{.Status}}").split())),
            "the node back")
        print(f"round {r + 1}: InService one engine {one[-1]:.2f} s, swarm {swarm[-1]:.2f} s; "
              f"killed task answered again after {task_kill[-1]:.2f} s; stopped node's instance "
              f"back after {node_stop[-1]:.2f} s", flush=True)
finally:
    for p in (local, clustered):
        p.send_signal(signal.SIGINT)
        p.wait()
med = statistics.median
print(f"\n{n} instances, median of {rounds} rounds:")
print(f"  CreateEndpoint to InService: one engine {med(one):.2f} s, swarm of 3 nodes {med(swarm):.2f} s ({med(swarm) / med(one):.2f}x)")
print(f"  killed task to a new instance answering: {med(task_kill):.2f} s (health checks each 1 s)")
print(f"  stopped node to every instance on the nodes left: {med(node_stop):.2f} s")
EOF
