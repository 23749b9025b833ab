# Shared by the Python checks (tests/sdk/run, tests/client/run,
# tests/fuzz/run): a venv under target/, and the real `tollgate` binary on a
# temp SQLite database in front of the mock provider. Source it after
# setting `log_tag` (e.g. "sdk"); it sets `root`, `target`, `tmp`, and, after
# `start_gateway`, `url` and `admin_token`. Everything started is stopped on
# exit; the logs' tails are printed when the script fails. `KEEP_LOGS=1`
# keeps the temp dir.
# shellcheck shell=bash

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
target="${CARGO_TARGET_DIR:-$root/target}"
tollgate="$target/debug/tollgate"
mock="$target/debug/tollgate-mock-provider"
admin_token="admin-test"
jwt_secret="harness-jwt-secret-at-least-32-bytes-long"

# stop, free_port, listening_at and release_all, shared with scripts/load
# (its log is replaced below: these checks log to stdout).
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
log() { echo "[${log_tag:-check}] $*"; }

# ensure_venv DIR IMPORT_CHECK PIP_SPEC...: a venv at DIR in which the Python
# snippet IMPORT_CHECK exits 0, pip-installing PIP_SPEC... when it does not.
ensure_venv() {
    local venv=$1 check=$2
    shift 2
    if [[ ! -x "$venv/bin/python" ]]; then
        log "creating $venv"
        mkdir -p "$(dirname "$venv")"
        python3 -m venv "$venv"
    fi
    if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
        log "pip install $*"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    fi
}

# The binaries as they are (scripts/test builds them first); built only when missing.
ensure_binaries() {
    if [[ ! -x "$tollgate" || ! -x "$mock" ]]; then
        log "building the binaries (missing)"
        cargo build -p tollgate-api -p tollgate-mock-provider --bins
    fi
}

tmp="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-${log_tag:-check}.XXXXXX")"

# Stops everything started (and on failure prints the logs' tails), then
# removes the temp dir.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    release_all "$rc"
    if [[ "${KEEP_LOGS:-${SDK_KEEP_LOGS:-0}}" == 1 ]]; then
        log "logs kept in $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts the mock provider (it binds port 0 itself and prints its address:
# no race for a port) and sets `mock_url` (ending in /v1).
start_mock() {
    "$mock" --listen 127.0.0.1:0 >"$tmp/tollgate-mock-provider.log" 2>&1 &
    pids+=("$!")
    mock_url="$(listening_at tollgate-mock-provider "$!")"
    mock_url="${mock_url%/}"
    [[ "$mock_url" == */v1 ]] || mock_url="$mock_url/v1"
    log "mock provider at $mock_url"
}

# start_gateway CONFIG_YAML: `tollgate serve` on a temp SQLite database with
# that catalog, the admin token, a JWT secret and every inbound webhook's
# verification setting (both of Lago's modes: a fuzzer's JWT-shaped signature
# must meet a configured `jwt` mode, not the 503 of an unconfigured one);
# waits for /health and sets `url`.
start_gateway() {
    printf '%s\n' "$1" >"$tmp/tollgate.yaml"
    local port
    port="$(free_port)"
    url="http://127.0.0.1:$port"
    TOLLGATE_LISTEN="127.0.0.1:$port" \
        DATABASE_URL="sqlite://$tmp/t.db" \
        TOLLGATE_CONFIG="$tmp/tollgate.yaml" \
        TOLLGATE_ADMIN_TOKEN="$admin_token" \
        TOLLGATE_MASTER_KEY="harness-test-master-passphrase" \
        TOLLGATE_JWT_SECRET="$jwt_secret" \
        STRIPE_WEBHOOK_SECRET="whsec_harness_stripe" \
        LAGO_WEBHOOK_SECRET="harness-lago-secret" \
        LAGO_WEBHOOK_PUBLIC_KEY="$(<"$root/tests/fixtures/lago-webhook-public.pem")" \
        RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 \
        "$tollgate" serve >"$tmp/tollgate.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null --max-time 1 "$url/health" 2>/dev/null; then
            log "tollgate at $url (sqlite://$tmp/t.db)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "tollgate serve exited before /health answered"
            exit 1
        fi
        sleep 0.1
    done
    log "tollgate did not answer /health within 30 s"
    exit 1
}

# The smallest catalog: gpt-4o-mini served by the mock (OpenAI kind).
mock_catalog() {
    cat <<EOF
providers:
  mock: { kind: openai, base_url: "$mock_url", api_key: "sk-mock-platform" }
models:
  - { id: gpt-4o-mini, provider: mock, upstream: gpt-4o-mini, max_output_tokens: 16384,
      price: { input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075 } }
  - { id: text-embedding-3-small, provider: mock, mode: embedding, price: { input_per_mtok: 0.02 } }
power_levels:
  eco:       [gpt-4o-mini]
  balanced:  [gpt-4o-mini]
  precision: [gpt-4o-mini]
EOF
}
