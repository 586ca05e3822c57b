#!/usr/bin/env bash
# Example: iperf3 through a gateway pair, with the direct figure beside it.
#   docs/examples/iperf3.sh [seconds]      (after .ci/install; BUILD_DIR=build by default)
# An iperf3 server runs "behind" gateway west; west exports it, east imports it; the same
# iperf3 client then measures the direct path and the path through both gateways.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
DUR=${1:-5}
BIN=$(cd "$top" && cd "${BUILD_DIR:-build}" && pwd) # relative to the checkout, or absolute
DEMO=$(mktemp -d /tmp/clusterlink-iperf.XXXXXX)
. "$top/.ci/lib.sh"
trap 'stop_all; rm -rf "$DEMO"' EXIT

say "Two gateways and a fabric"
make_fabric east west > /dev/null
start_gateway east 1
start_gateway west 1
link_peers east west
policy east allow-all allow
policy west allow-all allow
wait_reachable east west

say "iperf3 server behind west, exported by west, imported by east"
srv=$(free_port)
iperf3 -s -B 127.0.0.1 -p "$srv" > "$DEMO/iperf3-server.log" 2>&1 &
pids+=($!)
imp=$(free_port)
ctl west create export --name iperf3 --host 127.0.0.1 --port "$srv"
ctl east create import --name iperf3 --port "$imp" --peer west
for _ in $(seq 1 100); do ss -Hltn "sport = :$imp" | grep -q . && break; sleep 0.05; done

rate() { iperf3 -c 127.0.0.1 -p "$1" -t "$DUR" -J | /usr/bin/python3 -c \
    'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'; }
say "Measuring ($DUR s each)"
direct=$(rate "$srv")
tunnel=$(rate "$imp")
printf '\n%-28s %8s Gbit/s\n%-28s %8s Gbit/s\n' "direct (no tunnel)" "$direct" \
    "through east -> west (mTLS)" "$tunnel"
