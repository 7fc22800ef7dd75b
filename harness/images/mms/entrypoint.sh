#!/usr/bin/env bash
# ENTRYPOINT of sagedock/mms (SageMaker serving-container contract).
#
#   serve        start Multi Model Server in the foreground, serving the model directory
#                /opt/ml/model (may be mounted read-only) on port
#                ${SAGEMAKER_BIND_TO_PORT:-8080}: GET /ping, POST /invocations.
#                With SAGEMAKER_MULTI_MODEL=true (a multi-model endpoint) no model is
#                loaded at start; the platform loads models from /opt/ml/models/<name>/model
#                with the MME API on the same port: POST/GET /models,
#                GET/DELETE /models/<name>, POST /models/<name>/invoke.
#   anything else   exec'd as a command (e.g. `bash`, `model-archiver --help`).
#
# Env honoured (all optional):
#   SAGEMAKER_BIND_TO_PORT          inference port (default 8080)
#   SAGEMAKER_MULTI_MODEL           "true": multi-model endpoint (see above)
#   SAGEMAKER_SAFE_PORT_RANGE       "LOW-HIGH": the management port is taken from it
#   SAGEMAKER_MODEL_SERVER_WORKERS  MMS default_workers_per_model (MMS default: CPU count)
#   SAGEMAKER_MODEL_SERVER_TIMEOUT  MMS default_response_timeout, seconds (MMS default 120)
#   SAGEMAKER_MAX_PAYLOAD_IN_MB     MMS max_request_size (MB * 1024 * 1024)
#   SAGEMAKER_MODEL_SERVER_VMARGS   JVM arguments (MMS "vmargs")
#   SAGEDOCK_MMS_MANAGEMENT_PORT    management port (default 8081, or 8082 if 8081 is taken)
#   SAGEDOCK_MMS_MODEL_DIR          model directory (default /opt/ml/model)
#
# Signals: PID 1 is this script. SIGTERM/SIGINT are forwarded to the MMS Java frontend,
# whose exit ends `multi-model-server --foreground` and then this script.
set -euo pipefail

log() { echo "[sagedock-mms] $*"; }

if [ "$#" -ne 1 ] || [ "$1" != "serve" ]; then
    if [ "$#" -eq 0 ]; then
        set -- serve
    else
        exec "$@"
    fi
fi

is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }

MODEL_DIR="${SAGEDOCK_MMS_MODEL_DIR:-/opt/ml/model}"
MODEL_DIR="${MODEL_DIR%/}"
PORT="${SAGEMAKER_BIND_TO_PORT:-8080}"
is_uint "$PORT" || { log "SAGEMAKER_BIND_TO_PORT is not a port: '$PORT'"; exit 1; }

if [ -n "${SAGEDOCK_MMS_MANAGEMENT_PORT:-}" ]; then
    MGMT_PORT="$SAGEDOCK_MMS_MANAGEMENT_PORT"
elif [ -n "${SAGEMAKER_SAFE_PORT_RANGE:-}" ]; then
    low="${SAGEMAKER_SAFE_PORT_RANGE%%-*}"
    high="${SAGEMAKER_SAFE_PORT_RANGE##*-}"
    is_uint "$low" && is_uint "$high" || { log "bad SAGEMAKER_SAFE_PORT_RANGE '$SAGEMAKER_SAFE_PORT_RANGE'"; exit 1; }
    MGMT_PORT="$low"
    [ "$MGMT_PORT" = "$PORT" ] && MGMT_PORT=$((low + 1))
    [ "$MGMT_PORT" -le "$high" ] || { log "no free port in SAGEMAKER_SAFE_PORT_RANGE '$SAGEMAKER_SAFE_PORT_RANGE'"; exit 1; }
else
    MGMT_PORT=8081
    [ "$MGMT_PORT" = "$PORT" ] && MGMT_PORT=8082
fi
is_uint "$MGMT_PORT" || { log "management port is not a port: '$MGMT_PORT'"; exit 1; }

MULTI_MODEL=false
[ "${SAGEMAKER_MULTI_MODEL:-}" = "true" ] && MULTI_MODEL=true

if [ "$MULTI_MODEL" = false ] && [ ! -f "$MODEL_DIR/MAR-INF/MANIFEST.json" ]; then
    log "no $MODEL_DIR/MAR-INF/MANIFEST.json: the model directory must be the output of"
    log "model-archiver --archive-format no-archive (or an extracted .mar)"
    ls -la "$MODEL_DIR" 2>&1 | sed 's/^/[sagedock-mms]   /' || true
    exit 1
fi

# MMS is given model_store = parent of the model dir and load_models = its base name, so
# it loads the directory in place and never writes into it.
MODEL_STORE="$(dirname "$MODEL_DIR")"
MODEL_NAME_IN_STORE="$(basename "$MODEL_DIR")"

CONFIG="${SAGEDOCK_MMS_CONFIG:-/etc/sagemaker-mms.properties}"
{
    echo "# written by sagedock-mms entrypoint at $(date -u +%FT%TZ)"
    echo "inference_address=http://0.0.0.0:$PORT"
    if [ "$MULTI_MODEL" = true ]; then
        # As the SageMaker inference toolkit configures MMS for multi-model endpoints:
        # management API on the inference port, load URLs are absolute paths, one worker
        # per model unless told otherwise.
        echo "management_address=http://0.0.0.0:$PORT"
        echo "model_store=/"
        [ -n "${SAGEMAKER_MODEL_SERVER_WORKERS:-}" ] || echo "default_workers_per_model=1"
    else
        echo "management_address=http://0.0.0.0:$MGMT_PORT"
        echo "model_store=$MODEL_STORE"
        echo "load_models=$MODEL_NAME_IN_STORE"
    fi
    echo "enable_envvars_config=false"
    if [ -n "${SAGEMAKER_MODEL_SERVER_WORKERS:-}" ]; then
        is_uint "$SAGEMAKER_MODEL_SERVER_WORKERS" || { log "SAGEMAKER_MODEL_SERVER_WORKERS is not a number"; exit 1; }
        echo "default_workers_per_model=$SAGEMAKER_MODEL_SERVER_WORKERS"
    fi
    if [ -n "${SAGEMAKER_MODEL_SERVER_TIMEOUT:-}" ]; then
        is_uint "$SAGEMAKER_MODEL_SERVER_TIMEOUT" || { log "SAGEMAKER_MODEL_SERVER_TIMEOUT is not a number"; exit 1; }
        echo "default_response_timeout=$SAGEMAKER_MODEL_SERVER_TIMEOUT"
        echo "unregister_model_timeout=$SAGEMAKER_MODEL_SERVER_TIMEOUT"
    fi
    if [ -n "${SAGEMAKER_MAX_PAYLOAD_IN_MB:-}" ]; then
        is_uint "$SAGEMAKER_MAX_PAYLOAD_IN_MB" || { log "SAGEMAKER_MAX_PAYLOAD_IN_MB is not a number"; exit 1; }
        bytes=$((SAGEMAKER_MAX_PAYLOAD_IN_MB * 1024 * 1024))
        echo "max_request_size=$bytes"
        echo "max_response_size=$bytes"
    fi
    if [ -n "${SAGEMAKER_MODEL_SERVER_VMARGS:-}" ]; then
        echo "vmargs=$SAGEMAKER_MODEL_SERVER_VMARGS"
    fi
} >"$CONFIG"
log "config $CONFIG:"
sed 's/^/[sagedock-mms]   /' "$CONFIG"

# multi-model-server refuses to start when its pid file names a live process; after a
# `docker restart` the stale file would name PID 1 (this script). Start clean.
PID_FILE="$(python3 -c 'import tempfile, os; print(os.path.join(tempfile.gettempdir(), ".model_server.pid"))')"
rm -f "$PID_FILE"

cd /tmp
multi-model-server --start --foreground \
    --mms-config "$CONFIG" \
    --log-config /usr/local/etc/mms/log4j2.xml &
MMS_PID=$!

forward() {
    local sig="$1" java_pid=""
    log "received SIG$sig, stopping MMS"
    [ -f "$PID_FILE" ] && java_pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    if [ -n "$java_pid" ] && kill -0 "$java_pid" 2>/dev/null; then
        kill -"$sig" "$java_pid" 2>/dev/null || true
    else
        kill -"$sig" "$MMS_PID" 2>/dev/null || true
    fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT

# `wait` returns early when a trapped signal arrives; keep waiting until MMS is gone.
status=0
while :; do
    set +e
    wait "$MMS_PID"
    status=$?
    set -e
    kill -0 "$MMS_PID" 2>/dev/null || break
done
log "MMS exited with status $status"
exit "$status"
