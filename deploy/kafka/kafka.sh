#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) on 127.0.0.1, no Docker.
# Jars come from Maven Central via deploy/kafka/pom.xml; see README.md beside this file.
#
#   kafka.sh up       fetch jars (once), format storage, start the broker, wait until it answers
#   kafka.sh down     stop the broker started by `up` and remove its data dir
#
# KAFKA_NODES=N (N > 1) runs an N-node cluster instead: node i (1..N) is broker
# and controller on ports KAFKA_PORT+i-1 and KAFKA_CONTROLLER_PORT+i-1, static
# voters, one cluster id, replication factor min(3, N), min ISR 2. Then also:
#   kafka.sh kill I   SIGKILL node I (a broker failure), keeping its data
#   kafka.sh start I  start node I again on its data, wait until it answers
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/pom.xml"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_NODES="${KAFKA_NODES:-1}"
[[ "$KAFKA_NODES" =~ ^[1-9]$ ]] || { echo "kafka: ERROR: KAFKA_NODES must be 1..9, got '$KAFKA_NODES'" >&2; exit 1; }
# Optional SASL_SSL listener (SCRAM-SHA-256/512) beside the PLAINTEXT one:
# its port, the PEM keystore (unencrypted PKCS#8 key + certificate chain, as
# deploy/kafka/certs writes it) and the SCRAM users created at format time,
# space-separated --add-scram values: 'SCRAM-SHA-512=[name=u,password=p]'.
KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-}"
KAFKA_SSL_KEYSTORE_PEM="${KAFKA_SSL_KEYSTORE_PEM:-}"
KAFKA_SCRAM_USERS="${KAFKA_SCRAM_USERS:-}"
KAFKA_HOST=127.0.0.1
CACHE="${KAFKA_CACHE_DIR:-$HOME/.cache/adaptrec/kafka-$KAFKA_VERSION}"
DATA="${KAFKA_DATA_DIR:-${TMPDIR:-/tmp}/adaptrec-kafka-$KAFKA_PORT}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
JAVA="${JAVA:-${JAVA_HOME:+$JAVA_HOME/bin/}java}"

LIBS="$CACHE/libs"
MARKER="$CACHE/.fetched-$KAFKA_VERSION"
DATA_TAG="$DATA/.adaptrec-kafka"   # proves the data dir is ours before rm -rf

# node I: points the per-node globals at node I (1 in a single-node setup,
# whose files sit in $DATA itself; a cluster's node I lives in $DATA/nodeI).
node() {
  NODE=$1
  NODE_DIR="$DATA"
  ((KAFKA_NODES == 1)) || NODE_DIR="$DATA/node$NODE"
  PORT=$((KAFKA_PORT + NODE - 1))
  CPORT=$((KAFKA_CONTROLLER_PORT + NODE - 1))
  PIDFILE="$NODE_DIR/kafka.pid"
  OUTFILE="$NODE_DIR/kafka.out"
  SERVER_LOG="$NODE_DIR/logs/server.log"
  PROPS="$NODE_DIR/server.properties"
  LOG4J="$NODE_DIR/log4j2.properties"
}
node 1

# voters: the static quorum, 1@127.0.0.1:C1,2@127.0.0.1:C2,...
voters() {
  local i v=()
  for ((i = 1; i <= KAFKA_NODES; i++)); do v+=("$i@$KAFKA_HOST:$((KAFKA_CONTROLLER_PORT + i - 1))"); done
  local IFS=,
  echo "${v[*]}"
}

say() { echo "kafka: $*"; }
die() { echo "kafka: ERROR: $*" >&2; exit 1; }

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null
}

# alive PID: true if the process exists and is not a zombie.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ "$state" != Z ]]
}

# our_pid: prints the pid from the pid file if that process is alive and is kafka.Kafka.
our_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

show_logs() {
  local f
  if [[ -f "$SERVER_LOG" ]] && grep -q ' ERROR ' "$SERVER_LOG"; then
    echo "---- first errors in $SERVER_LOG ----" >&2
    grep -m 3 ' ERROR ' "$SERVER_LOG" >&2
  fi
  for f in "$SERVER_LOG" "$OUTFILE"; do
    if [[ -s "$f" ]]; then
      echo "---- tail of $f ----" >&2
      tail -n 40 "$f" >&2
    fi
  done
}

# Remove the data dir, but only if it is ours (tagged) or empty.
remove_data() {
  [[ -e "$DATA" ]] || return 0
  if [[ -f "$DATA_TAG" ]] || [[ -z "$(ls -A "$DATA" 2>/dev/null)" ]]; then
    rm -rf "$DATA"
  else
    die "refusing to remove $DATA: not created by kafka.sh (no $(basename "$DATA_TAG"))"
  fi
}

fetch_jars() {
  if [[ -f "$MARKER" ]] && compgen -G "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars into $CACHE)"
  say "fetching jars via maven (kafka $KAFKA_VERSION -> $LIBS)..."
  mkdir -p "$CACHE"
  rm -rf "$LIBS.tmp"
  if ! mvn -q -B -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$LIBS.tmp" >"$CACHE/fetch.log" 2>&1; then
    tail -n 40 "$CACHE/fetch.log" >&2
    die "maven could not fetch the Kafka $KAFKA_VERSION jars (full log: $CACHE/fetch.log)"
  fi
  compgen -G "$LIBS.tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null \
    || die "maven ran but kafka_2.13-$KAFKA_VERSION.jar is missing from $LIBS.tmp"
  rm -rf "$LIBS"
  mv "$LIBS.tmp" "$LIBS"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$MARKER"
}

write_config() {
  mkdir -p "$NODE_DIR/logs" "$NODE_DIR/kraft"
  : >"$DATA_TAG"
  cat >"$PROPS" <<EOF
# Written by deploy/kafka/kafka.sh: KRaft broker+controller for tests.
process.roles=broker,controller
node.id=$NODE
controller.quorum.bootstrap.servers=$KAFKA_HOST:$CPORT
listeners=PLAINTEXT://$KAFKA_HOST:$PORT,CONTROLLER://$KAFKA_HOST:$CPORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$NODE_DIR/kraft
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
num.network.threads=2
num.io.threads=4
EOF
  if ((KAFKA_NODES > 1)); then
    local rf=$((KAFKA_NODES < 3 ? KAFKA_NODES : 3))
    sed -i '/^controller.quorum.bootstrap.servers=/d' "$PROPS"
    cat >>"$PROPS" <<EOF
# A $KAFKA_NODES-node cluster (KAFKA_NODES): static voters, replication $rf, min ISR 2.
controller.quorum.voters=$(voters)
default.replication.factor=$rf
min.insync.replicas=2
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=2
EOF
  fi
  if [[ -n "$KAFKA_SASL_SSL_PORT" ]]; then
    cat >>"$PROPS" <<EOF
# SASL_SSL listener (KAFKA_SASL_SSL_PORT); brokers talk to each other in PLAINTEXT.
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT,SASL_SSL://$KAFKA_HOST:$KAFKA_SASL_SSL_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_SSL://$KAFKA_HOST:$KAFKA_SASL_SSL_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_SSL_KEYSTORE_PEM
EOF
  fi
  if [[ -n "${KAFKA_EXTRA_PROPS:-}" ]]; then
    printf '# KAFKA_EXTRA_PROPS\n%s\n' "$KAFKA_EXTRA_PROPS" >>"$PROPS"
  fi
  cat >"$LOG4J" <<EOF
status = warn
name = adaptrec-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $SERVER_LOG
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

# Kafka's Uuid: 16 random bytes, URL-safe base64 without padding. Kafka itself never
# hands out ids starting with '-' (they read as CLI flags), so neither do we.
random_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" == -* || "$id" == "AAAAAAAAAAAAAAAAAAAAAA" ]] || break
  done
  echo "$id"
}

java_opts() {
  # shellcheck disable=SC2206
  local heap=($KAFKA_HEAP_OPTS)
  printf '%s\n' "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$LOG4J" "-Dkafka.logs.dir=$NODE_DIR/logs"
}

# launch: starts the current node's broker on its formatted data; prints its pid.
launch() {
  local opts=() launcher=()
  mapfile -t opts < <(java_opts)
  # setsid: own session, so the broker outlives this script and a ^C aimed at the caller.
  command -v setsid >/dev/null && launcher=(setsid)
  nohup "${launcher[@]}" "$JAVA" "${opts[@]}" -cp "$LIBS/*" kafka.Kafka "$PROPS" \
    >>"$OUTFILE" 2>&1 </dev/null &
  echo "$!" >"$PIDFILE"
  echo "$!"
}

# starts: how many times the current node's log says it started.
starts() {
  [[ -f "$SERVER_LOG" ]] || { echo 0; return; }
  grep -c 'Kafka Server started' "$SERVER_LOG" || true
}

# wait_ready PID BEFORE: waits until the current node answers and its log
# has more than BEFORE starts.
wait_ready() {
  local pid=$1 before=$2 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while :; do
    if ! alive "$pid"; then
      show_logs
      die "broker process $pid (node $NODE) exited during startup"
    fi
    if port_open "$PORT" && (($(starts) > before)) && { [[ -z "$KAFKA_SASL_SSL_PORT" ]] || port_open "$KAFKA_SASL_SSL_PORT"; }; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      show_logs
      die "broker did not come up on $KAFKA_HOST:$PORT within ${KAFKA_START_TIMEOUT}s (pid $pid still running; run '$0 down')"
    fi
    sleep 0.2
  done
}

# format CID: formats the current node's storage (a single node is its own
# quorum: --standalone; a cluster's voters are static, in the config).
format() {
  local opts=() users=() scram=() u standalone=()
  mapfile -t opts < <(java_opts)
  read -r -a users <<<"$KAFKA_SCRAM_USERS" # split on spaces, no globbing of the [...]
  for u in "${users[@]}"; do scram+=(--add-scram "$u"); done
  ((KAFKA_NODES > 1)) || standalone=(--standalone)
  if ! "$JAVA" "${opts[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format \
      -t "$1" -c "$PROPS" "${standalone[@]}" "${scram[@]}" >"$NODE_DIR/format.out" 2>&1; then
    cat "$NODE_DIR/format.out" >&2
    die "storage format failed (node $NODE)"
  fi
}

cmd_up() {
  local t0=$SECONDS i pid running=0 pids=()
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    node "$i"
    if our_pid >/dev/null; then running=$((running + 1)); fi
  done
  if ((running == KAFKA_NODES)); then
    node 1
    if port_open "$PORT"; then
      say "already up on $KAFKA_HOST:$KAFKA_PORT ($KAFKA_NODES node(s))"
      return 0
    fi
  fi
  ((running == 0)) || die "only $running of $KAFKA_NODES nodes are running; run '$0 down' first"
  command -v "$JAVA" >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    node "$i"
    if port_open "$PORT"; then
      die "$KAFKA_HOST:$PORT is already in use by another process (not ours: no live pid in $PIDFILE)"
    fi
    if port_open "$CPORT"; then
      die "controller port $KAFKA_HOST:$CPORT is already in use"
    fi
  done
  if [[ -n "$KAFKA_SASL_SSL_PORT" ]]; then
    ((KAFKA_NODES == 1)) || die "KAFKA_SASL_SSL_PORT needs KAFKA_NODES=1"
    [[ -r "$KAFKA_SSL_KEYSTORE_PEM" ]] || die "KAFKA_SASL_SSL_PORT needs KAFKA_SSL_KEYSTORE_PEM, a readable PEM keystore (go run ./deploy/kafka/certs writes one)"
    if port_open "$KAFKA_SASL_SSL_PORT"; then
      die "SASL_SSL port $KAFKA_HOST:$KAFKA_SASL_SSL_PORT is already in use"
    fi
  fi
  fetch_jars
  # Stale data from a run that was not brought down: start from scratch.
  remove_data
  local cid
  cid="${KAFKA_CLUSTER_ID:-$(random_cluster_id)}"
  say "formatting storage in $DATA (cluster id $cid, $KAFKA_NODES node(s))..."
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    node "$i"
    write_config
    format "$cid"
  done
  # A cluster's nodes start together: none is ready before a quorum is.
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    node "$i"
    say "starting broker $KAFKA_VERSION (node $i) on $KAFKA_HOST:$PORT..."
    pids+=("$(launch)")
  done
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    node "$i"
    wait_ready "${pids[i - 1]}" 0
  done
  say "up on $KAFKA_HOST:$KAFKA_PORT ($KAFKA_NODES node(s), pids ${pids[*]}, $((SECONDS - t0))s, logs in $DATA)"
}

# stop_node: TERM the current node's broker, KILL after 20 s.
stop_node() {
  local pid i
  pid="$(our_pid)" || return 0
  say "stopping pid $pid (node $NODE)..."
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.2
  done
  if alive "$pid"; then
    say "pid $pid did not stop within 20s; killing"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
  fi
}

cmd_down() {
  local i
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    node "$i"
    if our_pid >/dev/null; then stop_node; else say "no running broker for $NODE_DIR"; fi
  done
  remove_data
  say "down ($DATA removed)"
}

# node_arg I: checks that I names a node of the cluster and selects it.
node_arg() {
  ((KAFKA_NODES > 1)) || die "kill and start need a cluster (KAFKA_NODES > 1)"
  [[ "${1:-}" =~ ^[1-9]$ ]] && (($1 <= KAFKA_NODES)) || die "node must be 1..$KAFKA_NODES, got '${1:-}'"
  node "$1"
}

# cmd_kill I: SIGKILL node I, as a crash would, and wait until it is gone.
cmd_kill() {
  node_arg "$1"
  local pid i
  pid="$(our_pid)" || die "node $1 is not running"
  kill -KILL "$pid"
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.05
  done
  say "killed node $1 (pid $pid, port $PORT)"
}

# cmd_start I: start node I again on its data and wait until it answers.
cmd_start() {
  node_arg "$1"
  local pid before
  if pid="$(our_pid)"; then
    say "node $1 already running (pid $pid)"
    return 0
  fi
  before="$(starts)"
  pid="$(launch)"
  wait_ready "$pid" "$before"
  say "node $1 up again on $KAFKA_HOST:$PORT (pid $pid)"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  kill) cmd_kill "${2:-}" ;;
  start) cmd_start "${2:-}" ;;
  *)
    echo "usage: $0 up|down|kill NODE|start NODE" >&2
    exit 2
    ;;
esac
