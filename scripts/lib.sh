# shellcheck shell=bash
# Helpers shared by scripts/load and scripts/build-release: starting the
# mock provider and a gateway on this machine, stopping them, and the
# management API calls that give a funded organization's key.
#
# The sourcing script sets log_tag (its log lines' prefix), tmp (a
# directory for the processes' logs) and postgres_server (for
# new_postgres_database), reads the globals these functions set (tg_pid, gw,
# admin_token, org_id, key, pg_db), and calls release_all from its exit trap.
# shellcheck disable=SC2034,SC2154 # the globals shared with the sourcing script

# What release_all stops and drops: every process started, every database made.
pids=()
pg_dbs=()

log() { echo "[$log_tag] $*" >&2; }
# die MESSAGE: logs to standard error (also where log is redirected, and
# from inside a command substitution), exits 1.
die() {
    log "error: $*" >&2
    exit 1
}

# stop PID: SIGTERM, then SIGKILL after 15 s.
stop() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for 15 s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# release_all EXIT_STATUS: stops every process in pids, drops every
# database in pg_dbs, and when the script failed prints the last lines of
# each log in $tmp.
release_all() {
    local rc=$1 pid db f
    for pid in "${pids[@]}"; do
        stop "$pid"
    done
    for db in "${pg_dbs[@]}"; do
        psql -q -X "$postgres_server/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >&2 ||
            log "could not drop database $db"
    done
    if ((rc != 0)); then
        for f in "$tmp"/*.log; do
            [[ -s "$f" ]] || continue
            echo "----- last lines of $(basename "$f") -----" >&2
            tail -n 30 "$f" >&2
        done
    fi
}

# new_postgres_database PREFIX: creates PREFIX_<random> on $postgres_server
# (dropped by release_all); sets pg_db.
new_postgres_database() {
    pg_db="$1_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    psql -q -X "$postgres_server/postgres" -c "CREATE DATABASE $pg_db" >&2 || die "cannot create database $pg_db"
    pg_dbs+=("$pg_db")
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# listening_at NAME PID: the address that process NAME (its log in
# $tmp/NAME.log) prints as "NAME listening on http://…", within 10 s.
listening_at() {
    local name=$1 pid=$2 url
    for _ in $(seq 1 100); do
        # The log may not exist yet: the process's shell opens it after the fork.
        url="$(sed -n "s/^$name listening on \\(http[^ ]*\\).*\$/\\1/p" "$tmp/$name.log" 2>/dev/null | head -n 1)" || true
        [[ -n "$url" ]] && break
        kill -0 "$pid" 2>/dev/null || die "$name exited"
        sleep 0.1
    done
    [[ -n "$url" ]] || die "$name did not report its address"
    echo "$url"
}

# start_tollgate BINARY DATABASE_URL CONFIG LOG [VAR=VALUE...]: `tollgate
# serve` on a free port with a fresh admin token, until /health answers.
# Sets tg_pid, gw (its base URL) and admin_token.
start_tollgate() {
    local binary=$1 database_url=$2 config=$3 logfile=$4 port
    shift 4
    port="$(free_port)"
    gw="http://127.0.0.1:$port"
    admin_token="admin-$RANDOM$RANDOM"
    env TOLLGATE_LISTEN="127.0.0.1:$port" \
        DATABASE_URL="$database_url" \
        TOLLGATE_CONFIG="$config" \
        TOLLGATE_ADMIN_TOKEN="$admin_token" \
        TOLLGATE_MASTER_KEY="load-benchmark-master-passphrase" \
        TOLLGATE_JWT_SECRET="load-benchmark-jwt-secret-at-least-32-bytes-long" \
        RUST_LOG=warn NO_COLOR=1 "$@" \
        "$binary" serve >"$logfile" 2>&1 &
    tg_pid=$!
    pids+=("$tg_pid")
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null --max-time 1 "$gw/health" 2>/dev/null && return 0
        kill -0 "$tg_pid" 2>/dev/null || die "tollgate serve exited before /health answered (log: $logfile)"
        sleep 0.1
    done
    die "tollgate did not answer /health within 30 s (log: $logfile)"
}

# api METHOD PATH [JSON]: the management API of the gateway at $gw; prints
# the body, fails on non-2xx.
api() {
    local args=(-sS --max-time 30 -X "$1" -H "Authorization: Bearer $admin_token" -w '\n%{http_code}')
    [[ $# -ge 3 ]] && args+=(-H "Content-Type: application/json" --data "$3")
    local out code
    out="$(curl "${args[@]}" "$gw$2")" || return 1
    code="${out##*$'\n'}"
    out="${out%$'\n'*}"
    if [[ "$code" != 2?? ]]; then
        log "$1 $2 answered HTTP $code: $out"
        return 1
    fi
    printf '%s\n' "$out"
}

# json_get FIELD: reads JSON on stdin, prints one top-level field.
json_get() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# funded_key NAME: a new USD organization NAME at $gw with an API key and
# 10^12 micro-USD (1 000 000 USD: no run here can spend it). Sets org_id and key.
funded_key() {
    org_id="$(api POST /api/v1/organizations "{\"name\":\"$1\",\"billing_mode\":\"usd\"}" | json_get id)" ||
        die "cannot create the organization"
    key="$(api POST "/api/v1/organizations/$org_id/api-keys" '{"name":"load"}' | json_get key)" ||
        die "cannot create the API key"
    api POST "/api/v1/organizations/$org_id/credits/grants" \
        '{"amount":1000000000000,"idempotency_key":"load-grant","reason":"load benchmark"}' >/dev/null ||
        die "cannot grant credits"
}
