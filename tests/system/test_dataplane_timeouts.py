"""Dataplane deadlines and late asynchronous replies, with real gateways on loopback.

- --idle-timeout: a tunnel with no byte either way is reset after that long, a busy one lives.
- Connections that never finish their TLS handshake are closed at its deadline (10 s) and
  delay no one meanwhile.
- A client that resets while its authorization is pending (the controlplane stopped with
  SIGSTOP, so the reply comes late): the late reply finds the tunnel gone by its {id,
  generation} reference and the worker neither crashes nor leaks (run under ASan in CI).
"""
import json
import os
import select
import signal
import socket
import struct
import time

import clharness as h
from test_dataplane import children, tls_attempt
from test_e2e_basic import linked_pair


def count(gw_proc, text):
    try:
        with open(gw_proc.log_path, "rb") as f:
            return f.read().count(text.encode())
    except OSError:
        return 0


def rst_close(s):
    """Closes with a TCP RST (SO_LINGER 0), as a client that gives up abruptly."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def closed_now(s):
    """True when s has been closed or reset by the far end (non-blocking check)."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(100) == b""
    except OSError:
        return True


def test_idle_tunnel_is_reset_busy_one_lives(gateways, echo):
    a, b, srv, port = linked_pair(gateways, echo, extra_dp=["--idle-timeout", "500"])
    idle = h.connect(port)
    busy = h.connect(port)
    idle.sendall(b"i")
    assert idle.recv(10) == b"i"
    t0 = time.monotonic()
    closed_at = None
    # the busy connection sends a byte every 100 ms; the idle one says nothing
    deadline = t0 + 5 * h.MULT
    while time.monotonic() < deadline and (closed_at is None or time.monotonic() < t0 + 2):
        busy.sendall(b"b")
        assert busy.recv(10) == b"b"
        if closed_at is None and closed_now(idle):
            closed_at = time.monotonic()
        time.sleep(0.1)
    assert closed_at is not None, "the idle tunnel was not closed"
    # no byte for 500 ms on either gateway: not before, and not much later
    assert 0.4 <= closed_at - t0 <= 3 * h.MULT, closed_at - t0
    busy.sendall(b"still")
    assert busy.recv(10) == b"still"
    assert time.monotonic() - t0 >= 2  # it outlived the idle timeout several times over
    busy.close()
    idle.close()
    # the reset is logged on the gateway that fired first and counted there as idleClosed,
    # not as an error (the other one sees a reset from the far side, which it does not count)
    h.wait_for(lambda: count(a.dp, "ms, closing") + count(b.dp, "ms, closing") >= 1, 5,
               "idle close logged")

    def total(key):
        ca = a.ctl_json("status")["counters"]
        cb = b.ctl_json("status")["counters"]
        return ca["imports"]["echo"][key] + cb["exports"]["echo"][key]
    h.wait_for(lambda: total("idleClosed") >= 1, 10, "idle close counted")
    assert total("errors") == 0
    # the importing side counts it for the peer as well, when it was the one that fired
    ca = a.ctl_json("status")["counters"]
    assert ca["peers"]["gw-b"]["idleClosed"] == ca["imports"]["echo"]["idleClosed"]
    assert "IDLE CLOSED" in a.ctl("status").stdout

    # every tunnel of the import went to gw-b: the peer's counters are the import's
    def peer_matches_import():
        c = a.ctl_json("status")["counters"]
        keys = ("open", "total", "bytesIn", "bytesOut")
        return c["imports"]["echo"]["open"] == 0 and \
            all(c["peers"]["gw-b"][k] == c["imports"]["echo"][k] for k in keys)
    h.wait_for(peer_matches_import, 10, "peer counters equal to the import's")
    ca = a.ctl_json("status")["counters"]
    assert ca["peers"]["gw-b"]["total"] >= 3 and ca["peers"]["gw-b"]["bytesOut"] >= 3


def test_idle_timeout_zero_never_closes(gateways, echo):
    a, b, srv, port = linked_pair(gateways, echo, extra_dp=["--idle-timeout", "0"])
    s = h.connect(port)
    s.sendall(b"1")
    assert s.recv(10) == b"1"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        assert not closed_now(s)
        time.sleep(0.1)
    s.sendall(b"2")
    assert s.recv(10) == b"2"
    s.close()


def test_client_reset_while_egress_authz_pending(gateways, echo):
    a, b, srv, port = linked_pair(gateways, echo)
    # workers remember decisions per config revision: a change makes the next ones ask again
    a.ctl("create", "export", "--name", "unrelated", "--host", "127.0.0.1", "--port", 9)
    def applied():  # every worker acknowledged the revision with the policy
        st = b.ctl_json("status")
        return st["workers"] and all(w["revision"] == st["revision"] for w in st["workers"])
    h.wait_for(applied, 10, "the policy reached every worker")
    workers = children(a.dp.pid)
    decisions = count(a.cp, "egress client=")
    resets = count(a.dp, "tcp error")
    accepted = count(a.dp, "accepted, authorizing")
    os.kill(a.cp.pid, signal.SIGSTOP)  # AUTHZ_EGRESS requests wait in the socket
    try:
        for _ in range(5):
            s = h.connect(port)
            h.wait_for(lambda: count(a.dp, "accepted, authorizing") > accepted, 5, "accepted")
            accepted += 1
            rst_close(s)
        # each tunnel sees its client's reset and goes while its authorization is pending
        h.wait_for(lambda: count(a.dp, "tcp error") >= resets + 5, 5, "client resets seen")
    finally:
        os.kill(a.cp.pid, signal.SIGCONT)
    # the late replies arrive (the controlplane logs each decision) and find nothing
    h.wait_for(lambda: count(a.cp, "egress client=") >= decisions + 5, 10, "late replies")
    h.wait_for(lambda: count(a.dp, "answer for a connection that is gone") == 5, 5, "stale")
    assert h.echo_roundtrip(port, b"after") == b"after"
    assert children(a.dp.pid) == workers  # no worker died
    log = open(a.dp.log_path, errors="replace").read()
    assert "AddressSanitizer" not in log and "runtime error" not in log


def test_client_reset_while_ingress_authz_pending(gateways, echo):
    a, b, srv, port = linked_pair(gateways, echo)
    # workers remember decisions per config revision: a change makes the next ones ask again
    b.ctl("create", "export", "--name", "unrelated", "--host", "127.0.0.1", "--port", 9)
    time.sleep(0.3)  # the CONFIG_DELTA reaches every worker
    workers = children(b.dp.pid)
    decisions = count(b.cp, "ingress peer=")
    asked = count(b.dp, "CONNECT, authorizing")
    gone = count(b.dp, "caller went away")
    os.kill(b.cp.pid, signal.SIGSTOP)  # the exporting side's AUTHZ_INGRESS waits
    try:
        for _ in range(3):
            s = h.connect(port)
            h.wait_for(lambda: count(b.dp, "CONNECT, authorizing") > asked, 5, "CONNECT at b")
            asked += 1
            rst_close(s)  # gw-a resets the client's tunnel, hence the stream to gw-b
            h.wait_for(lambda: count(b.dp, "caller went away") > gone, 5, "stream reset at b")
            gone += 1
    finally:
        os.kill(b.cp.pid, signal.SIGCONT)
    h.wait_for(lambda: count(b.cp, "ingress peer=") >= decisions + 3, 10, "late replies")
    h.wait_for(lambda: count(b.dp, "answer for a CONNECT that is gone") == 3, 5, "stale")
    assert h.echo_roundtrip(port, b"after") == b"after"
    assert children(b.dp.pid) == workers
    log = open(b.dp.log_path, errors="replace").read()
    assert "AddressSanitizer" not in log and "runtime error" not in log


def test_decisions_remembered_per_revision(gateways, echo):
    """A worker remembers authorization answers: a repeated caller is served with the
    controlplane stopped, and a policy change applies to the very next connection."""
    a, b, srv, port = linked_pair(gateways, echo)
    asked = count(b.cp, "ingress peer=")
    os.kill(b.cp.pid, signal.SIGSTOP)  # the exporting side cannot answer AUTHZ_INGRESS
    try:
        for i in range(5):
            assert h.echo_roundtrip(port, b"again%d" % i) == b"again%d" % i
    finally:
        os.kill(b.cp.pid, signal.SIGCONT)
    assert count(b.cp, "ingress peer=") == asked  # none of the five asked
    # a deny policy is a new revision: the next connection is asked about, and refused
    b.ctl("create", "policy", "--file", "-", input=json.dumps({
        "kind": "AccessPolicy", "metadata": {"name": "deny-a"},
        "spec": {"action": "deny", "from": [{"workloadSelector": {"matchLabels": {
            "peer.clusterlink.net/name": "gw-a"}}}], "to": [{"workloadSelector": {}}]}}))
    time.sleep(0.3)  # the CONFIG_DELTA reaches every worker
    assert h.echo_roundtrip(port, b"denied") != b"denied"
    assert count(b.cp, "ingress peer=") > asked
    # refused by the only peer's policy: a denial on both sides, not an error (STATS every 1 s)
    def counter(g, group, key):
        return g.ctl_json("status")["counters"].get(group, {}).get("echo", {}).get(key, 0)
    h.wait_for(lambda: counter(a, "imports", "denied") >= 1, 5, "import denial counted")
    h.wait_for(lambda: counter(b, "exports", "denied") >= 1, 5, "export denial counted")
    assert counter(a, "imports", "errors") == 0
    assert a.stop() == {"gw-a-dp": 0, "gw-a-cp": 0}
    assert b.stop() == {"gw-b-dp": 0, "gw-b-cp": 0}


def test_unfinished_handshakes_are_closed_and_hold_nobody_up(gateways, echo, fabric):
    """Connections to the public port that never finish TLS (silent, or a ClientHello cut short)
    are closed by the handshake deadline (10 s), and while they sit there tunnels still open."""
    a, b, _, port = linked_pair(gateways, echo)
    t0 = time.monotonic()
    stuck = []
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        if i % 2:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # a record header and one byte of a ClientHello
        stuck.append(s)
    try:
        for _ in range(20):  # tunnels through b meanwhile (on a's pooled connection)
            assert h.echo_roundtrip(port, b"through") == b"through"
        v, proto, n = tls_attempt(fabric, b)  # and a new handshake with b completes
        assert (v, proto) == ("TLSv1.3", "h2") and n > 0
        assert not any(closed_now(s) for s in stuck)  # not closed before their time
        h.wait_for(lambda: all(closed_now(s) for s in stuck), 20, "stuck handshakes closed")
        waited = time.monotonic() - t0
        assert 9 <= waited, waited  # the deadline, not something sooner
        assert h.echo_roundtrip(port, b"after") == b"after"
    finally:
        for s in stuck:
            s.close()
