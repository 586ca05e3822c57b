"""The thin path end to end: a byte crosses two gateways through an HTTP/2 CONNECT stream."""
import json
import os
import socket

import clharness as h


def link(a, b, echo_port, import_port, name="echo"):
    """b exports echo; a imports it from b; both sides allow everything."""
    b.ctl("create", "export", "--name", name, "--host", "127.0.0.1", "--port", echo_port)
    b.add_peer(a)
    b.allow_all()
    a.add_peer(b)
    a.allow_all()
    a.ctl("create", "import", "--name", name, "--port", import_port, "--peer", b.name)


def linked_pair(gateways, echo, extra_dp=()):
    """gw-a imports echo from gw-b (link above), both started with extra_dp; returns a, b, the
    echo server and the import port once a byte has made the round trip."""
    a, b = gateways("gw-a", "gw-b", extra_dp=extra_dp)
    srv = echo()
    port = h.free_port()
    link(a, b, srv.port, port)
    h.wait_for(lambda: h.echo_roundtrip(port, b"x") == b"x", 10, "tunnel up")
    return a, b, srv, port


def test_bytes_cross_two_gateways(gateways, echo):
    a, b = gateways("gw-a", "gw-b")
    srv = echo()
    port = h.free_port()
    link(a, b, srv.port, port)
    got = h.wait_for(lambda: h.echo_roundtrip(port, b"ping"), 10, "echo through the tunnel")
    assert got == b"ping"
    payload = os.urandom(4 << 20)
    assert h.sha256(h.echo_roundtrip(port, payload, timeout=30)) == h.sha256(payload)


def test_deny_policy_resets_and_lift_restores(gateways, echo):
    a, b = gateways("gw-a", "gw-b")
    srv = echo()
    port = h.free_port()
    link(a, b, srv.port, port)
    assert h.wait_for(lambda: h.echo_roundtrip(port, b"x"), 10, "tunnel up") == b"x"
    deny = {"kind": "AccessPolicy", "metadata": {"name": "deny-a"},
            "spec": {"action": "deny",
                     "from": [{"workloadSelector": {"matchLabels": {
                         "peer.clusterlink.net/name": "gw-a"}}}],
                     "to": [{"workloadSelector": {}}]}}
    b.ctl("create", "policy", "--file", "-", input=json.dumps(deny))
    h.wait_for(lambda: h.echo_roundtrip(port, b"x") in (b"", None), 10, "deny takes effect")
    b.ctl("delete", "policy", "--name", "deny-a")
    assert h.wait_for(lambda: h.echo_roundtrip(port, b"y"), 10, "deny lifted") == b"y"


def test_half_close_client_still_reads(gateways, echo):
    a, b = gateways("gw-a", "gw-b")
    srv = echo()
    port = h.free_port()
    link(a, b, srv.port, port)
    h.wait_for(lambda: h.echo_roundtrip(port, b"x"), 10, "tunnel up")
    s = h.connect(port)
    s.sendall(b"abc" * 1000)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    assert data == b"abc" * 1000
