#!/usr/bin/env bash
# Local Jaeger (all-in-one, in-memory storage) on 127.0.0.1, no Docker.
# The binary is built from this tools module (go.mod beside this file pins
# github.com/jaegertracing/jaeger v1.76.0) and cached outside the repo.
#
#   jaeger.sh build   build the binary once (about 4 minutes cold)
#   jaeger.sh up      build if needed, start Jaeger, wait until its query API answers
#   jaeger.sh down    stop the Jaeger started by `up`
#
# Ports: OTLP gRPC $JAEGER_OTLP_GRPC_PORT (4317), OTLP HTTP $JAEGER_OTLP_HTTP_PORT
# (4318), query UI/API $JAEGER_QUERY_PORT (16686).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JAEGER_VERSION=v1.76.0
CACHE="${JAEGER_CACHE_DIR:-$HOME/.cache/adaptrec/jaeger-$JAEGER_VERSION}"
BIN="$CACHE/jaeger"
JAEGER_OTLP_GRPC_PORT="${JAEGER_OTLP_GRPC_PORT:-4317}"
JAEGER_OTLP_HTTP_PORT="${JAEGER_OTLP_HTTP_PORT:-4318}"
JAEGER_QUERY_PORT="${JAEGER_QUERY_PORT:-16686}"
RUN="${JAEGER_RUN_DIR:-${TMPDIR:-/tmp}/adaptrec-jaeger-$JAEGER_QUERY_PORT}"
PIDFILE="$RUN/jaeger.pid"
OUTFILE="$RUN/jaeger.out"
CONFIG="$RUN/config.yaml"
START_TIMEOUT="${JAEGER_START_TIMEOUT:-60}"
GO="${GO:-go}"

say() { echo "jaeger: $*"; }
die() { echo "jaeger: ERROR: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

our_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == "$BIN" ]] || return 1
  echo "$pid"
}

build() {
  [[ -x "$BIN" ]] && return 0
  command -v "$GO" >/dev/null || die "go not found: Jaeger is built from deploy/jaeger/go.mod"
  mkdir -p "$CACHE"
  say "building Jaeger $JAEGER_VERSION into $BIN (once; about 4 minutes cold)"
  (cd "$SCRIPT_DIR" && "$GO" build -o "$BIN.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) \
    || die "building Jaeger failed (is the Go module proxy reachable?)"
  mv "$BIN.tmp" "$BIN"
}

# Jaeger v2 reads an OpenTelemetry-collector style config: OTLP in,
# in-memory storage, the query service, all on loopback.
write_config() {
  cat >"$CONFIG" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:$JAEGER_QUERY_PORT
    grpc:
      endpoint: 127.0.0.1:0
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$JAEGER_OTLP_GRPC_PORT
      http:
        endpoint: 127.0.0.1:$JAEGER_OTLP_HTTP_PORT
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
YAML
}

up() {
  build
  mkdir -p "$RUN"
  if pid="$(our_pid)"; then
    say "already running (pid $pid)"
    return 0
  fi
  for p in "$JAEGER_OTLP_GRPC_PORT" "$JAEGER_OTLP_HTTP_PORT" "$JAEGER_QUERY_PORT"; do
    port_open "$p" && die "port $p is taken by another process"
  done
  write_config
  nohup "$BIN" --config "$CONFIG" >"$OUTFILE" 2>&1 &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until curl -fsS "http://127.0.0.1:$JAEGER_QUERY_PORT/api/services" >/dev/null 2>&1 && port_open "$JAEGER_OTLP_HTTP_PORT"; do
    if ! our_pid >/dev/null; then
      tail -n 30 "$OUTFILE" >&2 || true
      die "Jaeger exited during start"
    fi
    ((SECONDS < deadline)) || { tail -n 30 "$OUTFILE" >&2; die "not answering after ${START_TIMEOUT}s"; }
    sleep 0.5
  done
  say "up: OTLP grpc 127.0.0.1:$JAEGER_OTLP_GRPC_PORT http 127.0.0.1:$JAEGER_OTLP_HTTP_PORT, query http://127.0.0.1:$JAEGER_QUERY_PORT"
}

down() {
  local pid
  if pid="$(our_pid)"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    say "stopped (pid $pid)"
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  *) echo "usage: $0 build|up|down" >&2; exit 2 ;;
esac
