# .ci/lib.sh — shared by .ci/demo and docs/examples/*.sh: gateways on loopback, driven with the
# real binaries and gwctl, every command printed as a user would type it.
# Needs: BIN (build dir), DEMO (work dir). Sets <gateway>_port after start_gateway.
GWCTL=$BIN/gwctl/gwctl
pids=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[36m$ %s\033[0m\n' "$*"; "$@"; }
# gwctl against one gateway: its own config home, so the contexts stay apart
ctl() { local gw=$1; shift; printf '\033[36m[%s]$ gwctl %s\033[0m\n' "$gw" "$*"; XDG_CONFIG_HOME=$DEMO/$gw/config "$GWCTL" "$@"; }
wait_file() { for _ in $(seq 1 300); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "$1 did not appear" >&2; return 1; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }

stop_all() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

make_fabric() {
    show "$GWCTL" create fabric --name demo --dir "$DEMO"
    for gw in "$@"; do show "$GWCTL" create peer-cert --name "$gw" --fabric "$DEMO/demo"; done
}

# start_gateway NAME [WORKERS]: controlplane + dataplane on a free loopback port, gwctl context
# (DP_FLAGS: more cl-dataplane flags, split on spaces)
start_gateway() {
    local gw=$1 workers=${2:-2} d=$DEMO/$1 c=$DEMO/demo/$1 port
    mkdir -p "$d"
    "$BIN/controlplane/cl-controlplane" --name "$gw" --data-dir "$d/data" --socket "$d/cp.sock" \
        --cert "$c/cert.pem" --key "$c/key.pem" --ca "$DEMO/demo/ca.pem" \
        --ready-file "$d/cp.ready" 2> "$d/controlplane.log" &
    pids+=($!)
    wait_file "$d/cp.ready"
    "$BIN/dataplane/cl-dataplane" --socket "$d/cp.sock" --listen 127.0.0.1:0 --workers "$workers" \
        --cert "$c/cert.pem" --key "$c/key.pem" --ca "$DEMO/demo/ca.pem" \
        --ready-file "$d/dp.ready" ${DP_FLAGS:-} 2> "$d/dataplane.log" &
    pids+=($!)
    wait_file "$d/dp.ready"
    port=$(cut -d' ' -f1 < "$d/dp.ready")
    printf -v "${gw//-/_}_port" '%s' "$port"
    echo "gateway $gw: controlplane + dataplane ($workers workers) on 127.0.0.1:$port, logs in $d"
    ctl "$gw" init --id "$gw" --host 127.0.0.1 --port "$port" \
        --ca "$DEMO/demo/ca.pem" --cert "$c/gwctl/cert.pem" --key "$c/gwctl/key.pem"
}

port_of() { local v="${1//-/_}_port"; echo "${!v}"; }

# link_peers A B: each knows the other
link_peers() {
    ctl "$1" create peer --name "$2" --host 127.0.0.1 --port "$(port_of "$2")"
    ctl "$2" create peer --name "$1" --host 127.0.0.1 --port "$(port_of "$1")"
}

# wait_reachable GW PEER: until GW's health probes see PEER (peers must know each other first)
wait_reachable() {
    for _ in $(seq 1 100); do
        XDG_CONFIG_HOME=$DEMO/$1/config "$GWCTL" get peer --name "$2" -o json 2>/dev/null |
            grep -q '"reachable": true' && return 0
        sleep 0.1
    done
    echo "$1 does not reach $2" >&2
    return 1
}

policy() { # policy GW NAME ACTION [FROM_PEER]
    local sel='{}'
    [ -n "${4:-}" ] && sel="{\"matchLabels\":{\"peer.clusterlink.net/name\":\"$4\"}}"
    echo "{\"kind\":\"AccessPolicy\",\"metadata\":{\"name\":\"$2\"},\"spec\":{\"action\":\"$3\",\"from\":[{\"workloadSelector\":$sel}],\"to\":[{\"workloadSelector\":{}}]}}" |
        ctl "$1" create policy --file -
}
