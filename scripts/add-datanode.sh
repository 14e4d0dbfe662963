#!/usr/bin/env bash
# Starts one more data node for the local cluster and prints its id. The
# gateway runs this for `POST /admin/nodes` (scripts/cluster.sh passes it as
# --add-node-command); cluster.sh stops these nodes with the rest.
# Needs TESSERA_DATA_DIR, TESSERA_PORT_BASE, TESSERA_CONTROLLERS, TESSERA_BIN.
set -euo pipefail
data=${TESSERA_DATA_DIR:?}
base=${TESSERA_PORT_BASE:?}
mkdir -p "$data/pids" "$data/logs"
exec 9>"$data/pids/.lock"
flock 9
n=1
while [ -e "$data/dn$n" ] || [ -e "$data/pids/dn$n.pid" ]; do n=$((n + 1)); done
node="dn$n"
mkdir -p "$data/$node"
nohup "${TESSERA_BIN:?}/tessera-datanode" --node-id "$node" --data-root "$data" \
  --listen "127.0.0.1:$((base + 100 + n))" --controllers "${TESSERA_CONTROLLERS:?}" \
  >>"$data/logs/$node.log" 2>&1 </dev/null &
echo $! >"$data/pids/$node.pid"
echo "$node"
