#!/usr/bin/env bash
# Several instances of the app behind one address, with the services they share: a throwaway
# PostgreSQL 15, an S3 server (moto) and nginx in front. For trying the scale-out setup on one
# machine (`make cluster`, README "Running several instances") and for benches/cluster.rs.
#
# Everything runs as a foreground child of this script, inside one temporary folder: daemons
# started in the background would outlive it (and on machines whose init does not reap orphans,
# stay behind as zombies). On exit, Ctrl-C, TERM or HUP every child is stopped and waited for, and
# the folder is deleted; nothing outside it is written.
#
# Settings, from the environment:
#   CLUSTER_PORT       nginx's port (3100); the instances listen on the next CLUSTER_INSTANCES ports
#   CLUSTER_INSTANCES  how many instances (3)
#   CLUSTER_PG_PORT    PostgreSQL's port (CLUSTER_PORT + 10)
#   CLUSTER_S3_PORT    the S3 server's port (CLUSTER_PORT + 11)
#   CLUSTER_BUCKET     the bucket made on it (waifu)
#   CLUSTER_APP_ENV    more variables for every instance, `NAME=value` separated by spaces
#                      (for example `WAIFU_LOG=warn`)
#   CLUSTER_SETTINGS   a settings file (JSON, any part of data/config/app.json) each instance
#                      starts with: for settings read only at start, such as the request rate
#   WAIFU_BIN          the server binary (the release build, `make build`)
#   WAIFU_INSTALL_DIR  where `make setup` put the built-in model and the voices (the checkout's data/)
#   CLUSTER_READY_TIMEOUT  seconds the instances may take to answer their health check (120)
#
# Prints `cluster: instance <i> is process <pid>` for each instance (the server's own pid) as it
# starts, and `cluster ready: http://127.0.0.1:<port>` once every instance answers through nginx.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PORT=${CLUSTER_PORT:-3100}
INSTANCES=${CLUSTER_INSTANCES:-3}
PG_PORT=${CLUSTER_PG_PORT:-$((PORT + 10))}
S3_PORT=${CLUSTER_S3_PORT:-$((PORT + 11))}
BUCKET=${CLUSTER_BUCKET:-waifu}
APP_ENV=${CLUSTER_APP_ENV:-}
SETTINGS=${CLUSTER_SETTINGS:-}
BIN=${WAIFU_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/waifu-rt3d/target}/release/waifu-rt3d}
INSTALL_DIR=${WAIFU_INSTALL_DIR:-$ROOT/data}
PG_BIN=${CLUSTER_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
MOTO_VENV=$ROOT/tools/moto/venv
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# How long the instances may take to answer their health check.
READY_TIMEOUT_S=${CLUSTER_READY_TIMEOUT:-120}

fail() {
  echo "cluster: $*" >&2
  exit 1
}

# ------------------------------------------------------------------ checks, before anything starts
for n in PORT INSTANCES PG_PORT S3_PORT; do
  [[ ${!n} =~ ^[0-9]+$ ]] || fail "$n must be a number, not '${!n}'"
done
((INSTANCES >= 1 && INSTANCES <= 32)) || fail "CLUSTER_INSTANCES must be 1 to 32, not $INSTANCES"
((PORT >= 1024 && PORT + INSTANCES <= 65535)) || fail "CLUSTER_PORT $PORT leaves no room for $INSTANCES instances"
[[ -x $BIN ]] || fail "no server binary at $BIN: build it first (make build), or set WAIFU_BIN"
[[ -d $ROOT/target/site/pkg ]] || fail "no built front end in $ROOT/target/site: build it first (make build)"
[[ -x $PG_BIN/initdb ]] || fail "PostgreSQL 15 is missing ($PG_BIN/initdb): apt-get install postgresql-15 (make cluster does)"
[[ -x $MOTO_VENV/bin/moto_server ]] || fail "the S3 server is missing ($MOTO_VENV): run make cluster, which installs it"
[[ -x $NGINX ]] || fail "nginx is missing: apt-get install nginx (make cluster does)"
command -v curl >/dev/null || fail "curl is missing: apt-get install curl"
if [[ -n $SETTINGS ]]; then
  [[ -f $SETTINGS ]] || fail "CLUSTER_SETTINGS names no file: $SETTINGS"
fi
app_env=()
for kv in $APP_ENV; do
  [[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || fail "CLUSTER_APP_ENV takes NAME=value words, not '$kv'"
  app_env+=("$kv")
done

app_ports=()
for ((i = 1; i <= INSTANCES; i++)); do app_ports+=($((PORT + i))); done
ports=("$PORT" "${app_ports[@]}" "$PG_PORT" "$S3_PORT")
if [[ $(printf '%s\n' "${ports[@]}" | sort -u | wc -l) -ne ${#ports[@]} ]]; then
  fail "ports overlap (nginx $PORT, instances ${app_ports[*]}, PostgreSQL $PG_PORT, S3 $S3_PORT): set CLUSTER_PG_PORT / CLUSTER_S3_PORT"
fi
# A port is free when it can be bound on loopback, as the servers bind (SO_REUSEADDR: connections
# of an earlier run still in TIME_WAIT do not count). Saying which one is taken, and by what role,
# beats a service failing halfway through the start.
busy=$(python3 - "${ports[@]}" <<'EOF'
import socket, sys
busy = []
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        busy.append(p)
    finally:
        s.close()
print(" ".join(busy))
EOF
)
if [[ -n $busy ]]; then
  fail "port(s) $busy already in use (nginx $PORT, instances ${app_ports[*]}, PostgreSQL $PG_PORT, S3 $S3_PORT): stop what uses them or set CLUSTER_PORT (and CLUSTER_PG_PORT, CLUSTER_S3_PORT)"
fi

# ------------------------------------------------------------------ the temporary folder and the stop
D=$(mktemp -d "${TMPDIR:-/tmp}/waifu-cluster.XXXXXX")
# PostgreSQL refuses to run as root, and nginx's workers run as nobody: both must reach inside.
chmod 711 "$D"
mkdir -p "$D/logs" "$D/nginx"

names=()
pids=()
started() {
  names+=("$1")
  pids+=("$2")
}

# Stops the children, last started first (nginx before the instances before the services they
# use), each with its own clean-stop signal, then KILL after 15 s; waits for each; deletes $D.
stop_all() {
  local code=$?
  # A second Ctrl-C, or the terminal closing, must not cut the clean-up short.
  trap '' INT TERM HUP
  trap - EXIT
  set +e
  local i pid sig t
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill -0 "$pid" 2>/dev/null || continue
    case ${names[i]} in
      postgres) sig=INT ;; # fast shutdown: open connections do not hold it up
      nginx) sig=QUIT ;;   # graceful: lets a response being sent finish
      *) sig=TERM ;;
    esac
    kill -"$sig" "$pid" 2>/dev/null
    for ((t = 0; t < 150; t++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "cluster: ${names[i]} did not stop within 15 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
  # The process substitutions that prefix the instances' logs end when their input closes.
  wait 2>/dev/null
  rm -rf "$D"
  echo "cluster: stopped"
  exit "$code"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Fails the start when a child has already exited, showing the end of its log.
check_alive() {
  local i
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[i]}" 2>/dev/null; then
      echo "cluster: ${names[i]} exited during the start" >&2
      [[ -f $D/logs/${names[i]}.log ]] && tail -n 20 "$D/logs/${names[i]}.log" >&2
      exit 1
    fi
  done
}

# Runs `$@` until it succeeds, for at most $1 seconds (`what` names it in the error).
wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    check_alive
    ((SECONDS < deadline)) || fail "$what did not come up within $seconds s (logs: $D/logs)"
    sleep 0.1
  done
}

# ------------------------------------------------------------------ PostgreSQL
# As an unprivileged user when run as root (PostgreSQL refuses root). `setpriv` executes the
# server in place, so the pid is the postmaster's own and a signal reaches it directly.
as_db_user=()
if [[ $(id -u) -eq 0 ]]; then
  as_db_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  mkdir -p "$D/pg"
  chown nobody:nogroup "$D/pg"
fi
echo "cluster: PostgreSQL on 127.0.0.1:$PG_PORT"
# C.UTF-8, not C: with a C character type PostgreSQL's regular expressions drop accented and
# non-Latin letters, which the full-text search relies on.
"${as_db_user[@]}" "$PG_BIN/initdb" -D "$D/pg/data" -U postgres --auth=trust -E UTF8 \
  --locale=C.UTF-8 --no-sync >"$D/logs/initdb.log" 2>&1 ||
  { tail -n 20 "$D/logs/initdb.log" >&2; fail "initdb failed"; }
# Durability is not wanted from a database deleted on exit.
"${as_db_user[@]}" "$PG_BIN/postgres" -D "$D/pg/data" -p "$PG_PORT" -k "$D/pg" \
  -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
  -c full_page_writes=off -c max_connections=200 >"$D/logs/postgres.log" 2>&1 &
started postgres $!
wait_for PostgreSQL 30 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres waifu
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/waifu"

# ------------------------------------------------------------------ S3 (moto, objects in memory)
echo "cluster: S3 (moto) on 127.0.0.1:$S3_PORT, bucket $BUCKET"
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$D/logs/moto.log" 2>&1 &
started moto $!
wait_for "the S3 server" 30 curl -fsS -o /dev/null "http://127.0.0.1:$S3_PORT/moto-api/"
s3_env=(
  "AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT"
  AWS_ALLOW_HTTP=true
  AWS_ACCESS_KEY_ID=test
  AWS_SECRET_ACCESS_KEY=test
  AWS_REGION=us-east-1
)
env "${s3_env[@]}" "$MOTO_VENV/bin/python" -c '
import boto3, os, sys
boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=sys.argv[1])
' "$BUCKET"

# ------------------------------------------------------------------ the instances
# One key for the API keys sealed in the shared settings: every instance must open what another
# one saved.
head -c 32 /dev/urandom >"$D/secret.key"
chmod 600 "$D/secret.key"
for ((i = 1; i <= INSTANCES; i++)); do
  p=${app_ports[i - 1]}
  mkdir -p "$D/app$i/config"
  [[ -n $SETTINGS ]] && cp "$SETTINGS" "$D/app$i/config/app.json"
  echo "cluster: instance $i on http://127.0.0.1:$p (data in $D/app$i)"
  # Shared state comes from the environment, not flags, so that a binary without those settings
  # still starts (it ignores unknown variables; it refuses unknown flags). From the checkout's
  # folder, where Leptos.toml points at the built front end.
  (
    cd "$ROOT"
    exec env "${s3_env[@]}" \
      DATABASE_URL="$DATABASE_URL" \
      STORAGE_URL="s3://$BUCKET/cluster" \
      WAIFU_SECRET_KEY_FILE="$D/secret.key" \
      "${app_env[@]}" \
      "$BIN" --port "$p" --data-dir "$D/app$i" --install-dir "$INSTALL_DIR"
  ) > >(sed -u "s/^/[app$i] /") 2>&1 &
  started "app$i" $!
  # For tests that stop one instance on purpose (end2end/tests/cluster.spec.ts kills one).
  echo "cluster: instance $i is process $!"
done

# ------------------------------------------------------------------ nginx
upstreams=""
for p in "${app_ports[@]}"; do
  # One failed connect takes an instance out for 2 s; the request goes to the next one.
  upstreams+="        server 127.0.0.1:$p max_fails=1 fail_timeout=2s;"$'\n'
done
cat >"$D/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $D/nginx/nginx.pid;
error_log $D/logs/nginx.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $D/nginx/client_body;
    proxy_temp_path $D/nginx/proxy;
    fastcgi_temp_path $D/nginx/fastcgi;
    uwsgi_temp_path $D/nginx/uwsgi;
    scgi_temp_path $D/nginx/scgi;
    upstream app {
        least_conn;
$upstreams        keepalive 32;
    }
    server {
        listen 127.0.0.1:$PORT;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The instances check Host and Origin against each other: pass the browser's own.
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Request-Id \$request_id;
            # Chat replies stream as server-sent events: pass each one on at once.
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            # A refused connect (an instance stopped) is retried on another one.
            proxy_next_upstream error timeout;
            # Above the avatar upload cap (avatar.max_upload_mb, 100 by default): the app says 413.
            client_max_body_size 200m;
        }
    }
}
EOF
echo "cluster: nginx on http://127.0.0.1:$PORT"
"$NGINX" -p "$D/nginx" -c "$D/nginx/nginx.conf" -e stderr -g 'daemon off;' \
  >>"$D/logs/nginx.log" 2>&1 &
started nginx $!

# ------------------------------------------------------------------ ready
for p in "${app_ports[@]}"; do
  wait_for "the instance on port $p" "$READY_TIMEOUT_S" curl -fsS -o /dev/null "http://127.0.0.1:$p/api/healthcheck"
done
# Through the proxy, once per instance: least_conn over idle instances takes each in turn.
for p in "${app_ports[@]}"; do
  wait_for "nginx" 30 curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/healthcheck"
done
echo "cluster: PostgreSQL $DATABASE_URL, S3 http://127.0.0.1:$S3_PORT (objects: http://127.0.0.1:$S3_PORT/moto-api/), logs in $D/logs"
echo "cluster ready: http://127.0.0.1:$PORT"

# ------------------------------------------------------------------ run until stopped
# An instance that stops is reported and the rest go on (nginx sends its requests elsewhere); a
# shared service that stops ends the cluster.
while true; do
  gone=""
  code=0
  wait -n -p gone || code=$?
  if [[ -z $gone ]]; then
    ((code != 127)) || fail "every process has exited"
    continue
  fi
  for i in "${!pids[@]}"; do
    [[ ${pids[i]} == "$gone" ]] || continue
    name=${names[i]}
    if [[ $name == app* ]]; then
      echo "cluster: $name exited (status $code); the other instances go on" >&2
      continue 2
    fi
    echo "cluster: $name exited (status $code); stopping the cluster" >&2
    [[ -f $D/logs/$name.log ]] && tail -n 20 "$D/logs/$name.log" >&2
    exit 1
  done
done
