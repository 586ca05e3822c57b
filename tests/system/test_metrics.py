"""GET /api/v1/metrics on a live gateway, fetched the way a scraper would (curl over HTTP/2 with
an admin certificate) and read with Prometheus' own parser (Debian's python3-prometheus-client):
the counters follow the traffic, a denial and the peer's reachability show, and a peer's
certificate is refused."""
import os
import subprocess

from prometheus_client.parser import text_string_to_metric_families

import clharness as h
from test_checklist import policy, refused
from test_e2e_basic import linked_pair


def scrape(fabric, gw, identity=None):
    """(status, content type, body) of the metrics of gw, fetched with identity's certificate
    (default: gw's admin)."""
    d = os.path.join(fabric.peer(gw.name), "gwctl") if identity is None else fabric.peer(identity)
    r = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", fabric.ca, "--cert", os.path.join(d, "cert.pem"),
         "--key", os.path.join(d, "key.pem"), "--resolve", "%s:%d:127.0.0.1" % (gw.name, gw.port),
         "-w", "\n%{http_code}|%{http_version}|%{content_type}",
         "https://%s:%d/api/v1/metrics" % (gw.name, gw.port)],
        capture_output=True, text=True, timeout=10 * h.MULT)
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition("\n")
    code, version, ctype = tail.split("|", 2)
    assert version == "2", tail
    return int(code), ctype, body


def samples(text):
    """{(name, frozenset(labels)): value} and {family: type}, as Prometheus reads them."""
    out, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out, types


def value(s, metric, **labels):
    return s.get((metric, frozenset(labels.items())))


def test_metrics_follow_the_traffic(gateways, fabric, echo):
    a, b, srv, port = linked_pair(gateways, echo)
    payload = os.urandom(100000)
    assert h.echo_roundtrip(port, payload, timeout=10) == payload
    policy(b, "deny-a", "deny", from_peer="gw-a")
    h.wait_for(lambda: refused(port), 10, "the deny takes effect")

    def counted():
        code, ctype, text = scrape(fabric, b)
        assert code == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8", (code, ctype)
        s, types = samples(text)
        if (value(s, "clusterlink_connections_denied_total", kind="export", name="echo") or 0) < 1:
            return None  # the workers report once a second
        return s, types
    s, types = h.wait_for(counted, 10, "gw-b's counters")
    # linked_pair's probe and the payload: both ways through the export, byte for byte
    assert value(s, "clusterlink_tunnels_total", kind="export", name="echo") >= 2
    out = value(s, "clusterlink_tunnel_bytes_total", kind="export", name="echo", direction="out")
    back = value(s, "clusterlink_tunnel_bytes_total", kind="export", name="echo", direction="in")
    assert out == back and len(payload) < out < len(payload) + 100, (out, back)
    assert value(s, "clusterlink_tunnels_open", kind="export", name="echo") == 0
    assert value(s, "clusterlink_objects", kind="exports") == 1
    assert value(s, "clusterlink_objects", kind="policies") == 2
    version = h.run([h.GWCTL, "version"]).stdout.split()[1]  # one version for the whole build
    assert value(s, "clusterlink_info", gateway="gw-b", version=version) == 1
    assert value(s, "clusterlink_dataplane_workers") == 1
    assert value(s, "clusterlink_worker_config_revision", worker="0") == \
        value(s, "clusterlink_config_revision")
    assert value(s, "clusterlink_certificate_not_after_seconds") > 1.7e9
    # the types Prometheus read (a counter family's name loses its _total)
    assert types["clusterlink_tunnels"] == "counter"
    assert types["clusterlink_tunnels_open"] == "gauge"
    assert types["clusterlink_tunnel_bytes"] == "counter"

    # the importing side counts under the import and the peer, and knows gw-b is up
    def a_counted():
        sa, _ = samples(scrape(fabric, a)[2])
        if value(sa, "clusterlink_peer_reachable", peer="gw-b") != 1:
            return None
        return sa if (value(sa, "clusterlink_tunnels_total", kind="peer", name="gw-b")
                      or 0) >= 2 else None
    sa = h.wait_for(a_counted, 10, "gw-a's counters")
    assert value(sa, "clusterlink_tunnel_bytes_total", kind="import", name="echo",
                 direction="out") == out


def test_metrics_are_for_admins_only(gateways, fabric, echo):
    a, b, srv, port = linked_pair(gateways, echo)
    code, _, text = scrape(fabric, b, identity="gw-a")  # a peer's certificate, not an admin's
    assert code == 403 and "may not use the management API" in text, (code, text)
