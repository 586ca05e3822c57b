#!/usr/bin/env bash
# Example: a small multi-service application spread over three gateways, in the spirit of
# Istio's BookInfo. The front end ("productpage", behind gateway "front") calls "reviews",
# which is exported by two peers: "books-v1" serves reviews v1, "books-v2" serves v2.
#   docs/examples/bookinfo.sh                (after .ci/install; BUILD_DIR=build by default)
# It shows: load balancing across peers (round-robin, then static), and policies that allow or
# deny a particular caller on one side.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$top" && cd "${BUILD_DIR:-build}" && pwd) # relative to the checkout, or absolute
DEMO=$(mktemp -d /tmp/clusterlink-bookinfo.XXXXXX)
. "$top/.ci/lib.sh"
trap 'stop_all; rm -rf "$DEMO"' EXIT

# a tiny HTTP service: answers every GET with its text
service() { # service PORT TEXT
    /usr/bin/python3 - "$1" "$2" <<'PY' > /dev/null 2>&1 &
import http.server, sys
port, text = int(sys.argv[1]), sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(text) + 1))
        self.end_headers(); self.wfile.write(text + b"\n")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
    pids+=($!)
}

# the front end: calls reviews through the local import on every request
frontend() { # frontend PORT REVIEWS_PORT
    /usr/bin/python3 - "$1" "$2" <<'PY' > /dev/null 2>&1 &
import http.server, sys, urllib.request
port, reviews = int(sys.argv[1]), int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            r = urllib.request.urlopen("http://127.0.0.1:%d/" % reviews, timeout=5).read()
        except Exception as e:
            r = b"reviews unavailable (%s)\n" % type(e).__name__.encode()
        body = b"productpage -> " + r
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
    pids+=($!)
}

say "Three gateways"
make_fabric front books-v1 books-v2 > /dev/null
for gw in front books-v1 books-v2; do start_gateway "$gw" 1; done
link_peers front books-v1
link_peers front books-v2
for gw in front books-v1 books-v2; do policy "$gw" allow-all allow; done
wait_reachable front books-v1
wait_reachable front books-v2
ctl front get peer

say "reviews v1 behind books-v1, v2 behind books-v2, both exported as \"reviews\""
for v in 1 2; do
    p=$(free_port)
    service "$p" "reviews v$v (served by books-v$v)"
    wait_http "$p"
    ctl "books-v$v" create export --name reviews --host 127.0.0.1 --port "$p"
done

say "front imports reviews from both peers (round-robin) and runs productpage"
rev=$(free_port)
page=$(free_port)
ctl front create import --name reviews --port "$rev" --peer books-v1 --peer books-v2 --lb round-robin
frontend "$page" "$rev"
wait_http "$page"
ask() { for _ in 1 2 3 4; do show curl -s "http://127.0.0.1:$page/"; done; }
ask

say "books-v2 denies the front end: every request goes to v1"
policy books-v2 deny-front deny front
ask

say "the deny is lifted, and front switches to static: v1 first, v2 only if v1 fails"
ctl books-v2 delete policy --name deny-front
ctl front update import --name reviews --port "$rev" --peer books-v1 --peer books-v2 --lb static
ask

say "books-v1 stops exporting reviews: static moves on to v2"
ctl books-v1 delete export --name reviews
ask
say "Done"
