"""ClusterLink's end-to-end checklist on live gateways (loopback, real binaries)."""
import json
import signal

import clharness as h
from test_e2e_basic import link


def ok(port, data=b"x"):
    return h.echo_roundtrip(port, data) == data


def refused(port):
    return h.echo_roundtrip(port, b"x") in (b"", None)


def policy(g, name, action, kind="AccessPolicy", from_peer=None, to_export=None):
    sel_from = {"matchLabels": {"peer.clusterlink.net/name": from_peer}} if from_peer else {}
    sel_to = {"matchLabels": {"export.clusterlink.net/name": to_export}} if to_export else {}
    g.ctl("create", "policy", "--file", "-", input=json.dumps({
        "kind": kind, "metadata": {"name": name},
        "spec": {"action": action, "from": [{"workloadSelector": sel_from}],
                 "to": [{"workloadSelector": sel_to}]}}))


def test_functional_changes_take_effect(gateways, echo):
    a, b = gateways("gw-a", "gw-b")
    srv = echo()
    port = h.free_port()
    link(a, b, srv.port, port)
    assert h.wait_for(lambda: ok(port), 10, "tunnel")
    # import port changed: the old one is refused, the new one works
    new = h.free_port()
    a.ctl("update", "import", "--name", "echo", "--port", new, "--peer", "gw-b")
    h.wait_for(lambda: ok(new), 10, "new import port")
    assert refused(port)
    # peer gateway port wrong, then fixed
    a.ctl("update", "peer", "--name", "gw-b", "--host", "127.0.0.1", "--port", h.free_port())
    h.wait_for(lambda: refused(new), 10, "wrong peer port")
    a.ctl("update", "peer", "--name", "gw-b", "--host", "127.0.0.1", "--port", b.port)
    h.wait_for(lambda: ok(new), 10, "peer port fixed")
    # export port wrong, then fixed
    b.ctl("update", "export", "--name", "echo", "--host", "127.0.0.1", "--port", h.free_port())
    h.wait_for(lambda: refused(new), 10, "wrong export port")
    b.ctl("update", "export", "--name", "echo", "--host", "127.0.0.1", "--port", srv.port)
    h.wait_for(lambda: ok(new), 10, "export port fixed")
    # each object deleted (access fails) and re-created (access works)
    for g, kind, name, recreate in (
            (b, "export", "echo", ["--host", "127.0.0.1", "--port", srv.port]),
            (a, "peer", "gw-b", ["--host", "127.0.0.1", "--port", b.port]),
            (b, "peer", "gw-a", ["--host", "127.0.0.1", "--port", a.port]),
            (a, "policy", "allow-all", None),
            (b, "policy", "allow-all", None)):
        g.ctl("delete", kind, "--name", name)
        h.wait_for(lambda: refused(new), 10, "%s %s deleted" % (kind, name))
        if recreate is None:
            g.allow_all()
        else:
            g.ctl("create", kind, "--name", name, *recreate)
        h.wait_for(lambda: ok(new), 10, "%s %s re-created" % (kind, name))
    a.ctl("delete", "import", "--name", "echo")
    h.wait_for(lambda: refused(new), 10, "import deleted")


def test_policies_on_both_sides(gateways, echo):
    a, b = gateways("gw-a", "gw-b")
    srv = echo()
    port = h.free_port()
    b.ctl("create", "export", "--name", "echo", "--host", "127.0.0.1", "--port", srv.port)
    b.add_peer(a)
    a.add_peer(b)
    a.ctl("create", "import", "--name", "echo", "--port", port, "--peer", "gw-b")
    h.wait_for(lambda: h.can_connect(port), 10, "import listening")
    assert refused(port)                     # default deny on both sides
    a.allow_all()
    assert refused(port)                     # allow on one side is not enough
    b.allow_all()
    assert h.wait_for(lambda: ok(port), 5, "allowed on both sides")
    policy(b, "deny-a", "deny", from_peer="gw-a")
    assert refused(port)                     # deny wins over allow
    policy(b, "p-allow", "allow", kind="PrivilegedAccessPolicy")
    assert ok(port)                          # privileged allow wins over deny
    policy(b, "p-deny", "deny", kind="PrivilegedAccessPolicy", to_export="echo")
    assert refused(port)                     # privileged deny wins over everything
    policy(a, "egress-deny", "deny", to_export="echo")
    for name in ("p-deny", "p-allow", "deny-a"):     # removed layer by layer on b
        b.ctl("delete", "policy", "--name", name)
    assert refused(port)                     # still denied by a's egress policy
    a.ctl("delete", "policy", "--name", "egress-deny")
    assert ok(port)


def three_way(gateways, echo, lb):
    a, b, c = gateways("gw-a", "gw-b", "gw-c")
    port = h.free_port()
    for g in (b, c):
        srv = echo(tag=g.name.encode() + b":")
        g.ctl("create", "export", "--name", "echo", "--host", "127.0.0.1", "--port", srv.port)
        g.add_peer(a)
        g.allow_all()
        a.add_peer(g)
    a.allow_all()
    a.ctl("create", "import", "--name", "echo", "--port", port, "--peer", "gw-b",
          "--peer", "gw-c", "--lb", lb)
    h.wait_for(lambda: ok(port, b"") is not None and h.echo_roundtrip(port, b"") != b"", 10,
               "tunnel")
    return a, b, c, port


def who(port):
    return h.echo_roundtrip(port, b"").split(b":")[0].decode()


def test_round_robin_exact_sequence(gateways, echo):
    _, _, _, port = three_way(gateways, echo, "round-robin")
    first = who(port)
    seq = [who(port) for _ in range(12)]
    other = "gw-c" if first == "gw-b" else "gw-b"
    assert seq == [other, first] * 6


def test_static_sticks_then_moves_on(gateways, echo):
    a, b, c, port = three_way(gateways, echo, "static")
    assert [who(port) for _ in range(10)] == ["gw-b"] * 10
    b.ctl("delete", "export", "--name", "echo")   # the first source is gone: 404 -> next
    assert [who(port) for _ in range(10)] == ["gw-c"] * 10


def test_random_reaches_all(gateways, echo):
    _, _, _, port = three_way(gateways, echo, "random")
    seen = {who(port) for _ in range(40)}
    assert seen == {"gw-b", "gw-c"}


def test_restart_both_controlplanes_keeps_everything(gateways, echo):
    a, b = gateways("gw-a", "gw-b")
    srv = echo()
    port = h.free_port()
    link(a, b, srv.port, port)
    assert h.wait_for(lambda: ok(port), 10, "tunnel")
    def objects(g):  # everything but the live status (reachability, round-trip times)
        allj = g.ctl_json("get", "all")
        for p in allj["peers"]:
            p.pop("status", None)
        return allj
    before = [objects(g) for g in (a, b)]
    for g in (a, b):
        g.cp.kill(signal.SIGTERM)
        g.start_cp()
    # the workers reconnect with backoff; until then the API answers 503 (a clear error)
    for g in (a, b):
        h.wait_for(lambda: g.ctl("status", check=False).returncode == 0, 10, "workers back")
    after = [objects(g) for g in (a, b)]
    assert before == after
    assert h.wait_for(lambda: ok(port), 10, "access after restart")


def test_denied_and_failed_connections_are_reset_not_left_hanging(gateways):
    a, b = gateways("gw-a", "gw-b")
    port = h.free_port()
    link(a, b, h.free_port(), port)   # export points at a closed port
    s = h.connect(port, timeout=10)   # the recv below would hang for 10 s if left open
    s.sendall(b"x")
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    s.close()
