#!/usr/bin/env bash
# Starts a complete local Tessera cluster in the foreground: 3 controllers,
# 4 data nodes and the gateway (which serves both dashboards), from the
# release binaries in target/release. Ctrl-C (or SIGTERM) stops everything.
#
# Environment (all optional):
#   TESSERA_HTTP_PORT    gateway port                        (8080)
#   TESSERA_PORT_BASE    controllers on BASE+1..3, data nodes on BASE+101..104 (7000)
#   TESSERA_DATA_DIR     data directory; chunks at DATA/<node_id>/<file_id>/<i>.chk (./data)
#   TESSERA_STATIC_DIR   built dashboards                    (frontend/dist)
#   TESSERA_DATANODES    number of data nodes                (4)
#   TESSERA_ADMIN_PASSWORD  password of the first admin, `admin`, created once
#                        the cluster is up (default: generated on first start,
#                        printed once and kept in DATA/admin-password)
#   TESSERA_INSECURE=1   plaintext gRPC (default: mutual TLS with certificates
#                        made on first start in DATA/tls by `tessera-admin certs`)
#   TESSERA_HEARTBEAT_INTERVAL_MS, TESSERA_DEAD_AFTER_MS, TESSERA_REPLICATION,
#   TESSERA_CHUNK_SIZE   passed through to the services
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/target/release"
http_port=${TESSERA_HTTP_PORT:-8080}
base=${TESSERA_PORT_BASE:-7000}
data=${TESSERA_DATA_DIR:-$root/data}
static=${TESSERA_STATIC_DIR:-$root/frontend/dist}
datanodes=${TESSERA_DATANODES:-4}
mkdir -p "$data/logs" "$data/pids"
data=$(cd "$data" && pwd)
rm -f "$data"/pids/*.pid

for b in tessera-controller tessera-datanode tessera-gateway tessera-admin; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b: run 'make build' first" >&2; exit 1; }
done

# Mutual TLS between the services: a cluster CA and certificates, made once.
# Every service (and add-datanode.sh, run by the gateway) reads TESSERA_TLS_DIR.
case "${TESSERA_INSECURE:-}" in
  1|true|yes) unset TESSERA_TLS_DIR; echo "warning: TESSERA_INSECURE is set: gRPC between the services is plaintext" >&2 ;;
  *)
    if [ ! -f "$data/tls/ca.pem" ]; then
      "$bin/tessera-admin" certs --out "$data/tls" >/dev/null
      echo "made a cluster CA and service certificates in $data/tls"
    fi
    export TESSERA_TLS_DIR="$data/tls"
    ;;
esac

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping the cluster..."
  # Data nodes added at run time (POST /admin/nodes) are ours too.
  for f in "$data"/pids/*.pid; do [ -e "$f" ] && pids+=("$(cat "$f")") && rm -f "$f"; done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Give every process a moment to flush, then make sure.
  for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

peers=""
controllers=""
for i in 1 2 3; do
  peers+="${peers:+,}$i=127.0.0.1:$((base + i))"
  controllers+="${controllers:+,}127.0.0.1:$((base + i))"
done

for i in 1 2 3; do
  "$bin/tessera-controller" --id "$i" --listen "127.0.0.1:$((base + i))" --peers "$peers" \
    --data-dir "$data/controller-$i" >>"$data/logs/controller-$i.log" 2>&1 &
  pids+=($!)
done
# dn1..dnN, plus any node added at run time in an earlier session.
nodes=$(seq "$datanodes")
for d in "$data"/dn*; do
  [ -d "$d" ] || continue
  i=${d##*/dn}
  case $i in ''|*[!0-9]*) continue ;; esac
  [ "$i" -gt "$datanodes" ] && nodes="$nodes $i"
done
for i in $nodes; do
  mkdir -p "$data/dn$i"
  "$bin/tessera-datanode" --node-id "dn$i" --data-root "$data" --listen "127.0.0.1:$((base + 100 + i))" \
    --controllers "$controllers" >>"$data/logs/dn$i.log" 2>&1 &
  pids+=($!)
done
TESSERA_DATA_DIR="$data" TESSERA_PORT_BASE="$base" TESSERA_CONTROLLERS="$controllers" TESSERA_BIN="$bin" \
  "$bin/tessera-gateway" --listen "127.0.0.1:$http_port" --controllers "$controllers" \
  --static-dir "$static" --add-node-command "$root/scripts/add-datanode.sh" >>"$data/logs/gateway.log" 2>&1 &
pids+=($!)

url="http://127.0.0.1:$http_port"
echo "waiting for the cluster to become ready..."
ready=0
for _ in $(seq 600); do
  if curl -fsS "$url/readyz" >/dev/null 2>&1; then ready=1; break; fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a process exited early; see $data/logs/" >&2; exit 1; }
  done
  sleep 0.1
done
[ $ready = 1 ] || { echo "cluster not ready after 60 s; see $data/logs/" >&2; exit 1; }

# The first admin. The password is printed once, when it is made.
password_file="$data/admin-password"
password_note="the password is in $password_file"
if [ -n "${TESSERA_ADMIN_PASSWORD:-}" ]; then
  printf '%s\n' "$TESSERA_ADMIN_PASSWORD" >"$password_file"
  chmod 600 "$password_file"
  password_note="the password is \$TESSERA_ADMIN_PASSWORD"
elif [ ! -s "$password_file" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$password_file")
  password_note="password: $(cat "$password_file")   (printed once; kept in $password_file)"
fi
"$bin/tessera-admin" --controllers "$controllers" users create admin --role admin \
  --password-file "$password_file" --if-missing >/dev/null

cat <<MSG

Tessera is running.
  User dashboard:   $url/
  Admin dashboard:  $url/admin
  Sign in as:       admin   ($password_note)
  HTTP API:         $url/api/files   (API docs: $url/api/openapi.json); with a token, e.g.
                    TOKEN=\$(target/release/tessera-admin --controllers $controllers ${TESSERA_TLS_DIR:+--tls-dir $TESSERA_TLS_DIR} tokens create admin)
                    curl -H "Authorization: Bearer \$TOKEN" --data-binary @file.bin "$url/api/files?name=file.bin"
  Controllers:      $controllers
  Data and logs:    $data   (logs in $data/logs)
Press Ctrl-C to stop.
MSG
# Stay up until Ctrl-C, even if a process dies (kill -9 one to watch the
# cluster heal); report deaths once.
declare -A reported
while :; do
  sleep 1 & wait $! || true
  for pid in "${pids[@]}"; do
    if [ -z "${reported[$pid]:-}" ] && ! kill -0 "$pid" 2>/dev/null; then
      reported[$pid]=1
      echo "process $pid exited; see $data/logs/" >&2
    fi
  done
done
