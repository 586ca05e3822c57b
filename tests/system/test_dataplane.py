"""Dataplane system tests: two real gateways on loopback, real sockets, real certificates."""
import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings

import pytest

import clharness as h
from test_checklist import refused
from test_e2e_basic import link, linked_pair
from test_health import reachable


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return sorted(int(x) for x in out.split())


def stream_hash(port, nbytes, chunk=1 << 20):
    """Sends nbytes of pseudo-random data through an echo, hashing both directions."""
    s = h.connect(port, timeout=60)
    sent, got = hashlib.sha256(), hashlib.sha256()
    block = os.urandom(chunk)
    total = [0]

    def send():
        left = nbytes
        while left > 0:
            b = block[:min(chunk, left)]
            s.sendall(b)
            sent.update(b)
            left -= len(b)
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send, daemon=True)
    t.start()
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        got.update(d)
        total[0] += len(d)
    t.join(60)
    s.close()
    return total[0], sent.hexdigest(), got.hexdigest()


@pytest.fixture
def pair(gateways, echo):
    return linked_pair(gateways, echo)


def test_100mib_byte_exact_both_ways(pair):
    _, _, _, port = pair
    n, sent, got = stream_hash(port, 100 << 20)
    assert n == 100 << 20
    assert sent == got


def test_1000_concurrent_connections(pair):
    _, _, _, port = pair
    socks = []
    try:
        for i in range(1000):
            socks.append(h.connect(port, timeout=30))
        for i, s in enumerate(socks):
            s.sendall(b"%06d" % i)
        for i, s in enumerate(socks):
            got = b""
            while len(got) < 6:
                d = s.recv(6 - len(got))
                assert d, "connection %d closed early" % i
                got += d
            assert got == b"%06d" % i
    finally:
        for s in socks:
            s.close()


def test_backend_refusing_resets_client(gateways):
    a, b = gateways("gw-a", "gw-b")
    dead = h.free_port()  # nothing listens there
    port = h.free_port()
    link(a, b, dead, port)
    h.wait_for(lambda: h.can_connect(port), 10, "import listening")
    s = h.connect(port)
    s.sendall(b"hello")
    with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
        while s.recv(100):
            pass
    s.close()


def tls_client(fabric, gw, certdir, server_name, maxv=None, minv=None, alpn=("h2",),
               timeout=5):
    """A TLS client of gw's public port (certdir: its certificate, or None) that sends the
    HTTP/2 preface; returns the socket and the server's first bytes, or raises what the
    handshake raised. TLS versions between minv and maxv, ALPN offer `alpn` (None: none)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(fabric.ca)
    if certdir is not None:
        ctx.load_cert_chain(os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem"))
    if maxv is not None:
        ctx.maximum_version = maxv
    if minv is not None:
        ctx.minimum_version = minv
    if alpn is not None:
        ctx.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(("127.0.0.1", gw.port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=server_name)
        # TLS 1.3: a rejected client certificate shows on the first read
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        return s, s.recv(100)
    except BaseException:
        raw.close()
        raise


def test_tls_refusals(gateways, fabric, workdir):
    a = gateways("gw-a")
    good = fabric.peer("gw-b")
    s, _ = tls_client(fabric, a, good, "gw-a")  # a proper client is accepted
    s.close()
    other = h.Fabric(workdir, name="other")
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        tls_client(fabric, a, other.peer("gw-x"), "gw-a")  # client from another CA
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        tls_client(fabric, a, None, "gw-a")  # no client certificate
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_client(fabric, a, good, "gw-z")  # the gateway is not gw-z


def total_when_settled(g):
    """The import's total tunnels in `gwctl status`, once two workers report it alike and none
    open over 1.2 s (workers report every second), else None."""
    def read():
        st = g.ctl_json("status")
        c = st["counters"]["imports"].get("echo", {})
        return c.get("total") if c.get("open") == 0 and len(st["workers"]) == 2 else None
    first = read()
    time.sleep(1.2)
    return first if first is not None and read() == first else None


def test_worker_killed_others_serve_and_master_restarts(fabric, workdir, echo):
    a = h.Gateway(fabric, "gw-a", workdir, workers=2).start()
    b = h.Gateway(fabric, "gw-b", workdir, workers=2).start()
    try:
        srv = echo()
        port = h.free_port()
        link(a, b, srv.port, port)
        h.wait_for(lambda: h.echo_roundtrip(port, b"x") == b"x", 10, "tunnel up")
        kids = h.wait_for(lambda: len(children(a.dp.pid)) == 2 and children(a.dp.pid), 10,
                          "two workers")
        # 20 tunnels, so both workers have some (SO_REUSEPORT spreads them): the counters must
        # not lose the killed worker's share when its successor starts reporting
        for _ in range(20):
            assert h.echo_roundtrip(port, b"counted") == b"counted"
        before = h.wait_for(lambda: total_when_settled(a), 10, "counters settled")
        os.kill(kids[0], signal.SIGKILL)
        # until the kernel has closed the dead worker's sockets, SO_REUSEPORT may still queue a
        # new connection on them (and that one is reset): wait until the master reaped it
        h.wait_for(lambda: kids[0] not in children(a.dp.pid), 10, "worker reaped")
        # the remaining worker keeps serving while the master restarts the dead one
        for _ in range(20):
            assert h.echo_roundtrip(port, b"still here") == b"still here"
        h.wait_for(lambda: len(children(a.dp.pid)) == 2 and kids[0] not in children(a.dp.pid),
                   10, "worker restarted")
        for _ in range(20):
            assert h.echo_roundtrip(port, b"again") == b"again"
        h.wait_for(lambda: total_when_settled(a) == before + 40, 10,
                   "the gateway's totals count every tunnel, the killed worker's too")
    finally:
        assert a.stop() == {"gw-a-dp": 0, "gw-a-cp": 0}
        assert b.stop() == {"gw-b-dp": 0, "gw-b-cp": 0}


def test_controlplane_restart_keeps_open_tunnels(pair):
    a, b, _, port = pair
    s = h.connect(port)
    s.sendall(b"before")
    assert s.recv(100) == b"before"
    for g in (a, b):
        g.cp.kill(signal.SIGKILL)
    s.sendall(b"during")  # both controlplanes are gone: the open tunnel still carries bytes
    assert s.recv(100) == b"during"
    for g in (a, b):
        g.start_cp()
    s.sendall(b"after")
    assert s.recv(100) == b"after"
    s.close()
    # new connections work again once the workers have reconnected
    assert h.wait_for(lambda: h.echo_roundtrip(port, b"new") == b"new", 10, "new connection")


def test_gateway_answering_for_another_peer_is_refused(gateways, echo):
    """a knows gw-b at an address where gw-c answers (a stale address, or an impostor with a
    certificate from the same fabric): the dial checks the certificate against the peer's name,
    so no tunnel is made and the backend is never reached."""
    a, c = gateways("gw-a", "gw-c")
    srv = echo()
    c.ctl("create", "export", "--name", "echo", "--host", "127.0.0.1", "--port", srv.port)
    c.add_peer(a)
    c.allow_all()
    a.allow_all()
    a.ctl("create", "peer", "--name", "gw-b", "--host", "127.0.0.1", "--port", c.port)
    wrong, right = h.free_port(), h.free_port()
    a.ctl("create", "import", "--name", "echo", "--port", wrong, "--peer", "gw-b")
    h.wait_for(lambda: h.can_connect(wrong), 10, "import listening")
    for _ in range(3):
        assert refused(wrong)
    h.wait_for(lambda: reachable(a, "gw-b") is False, 15, "gw-b shown unreachable")
    st = a.ctl_json("get", "peer", "--name", "gw-b")
    assert "does not name gw-b" in st["status"]["lastError"], st
    assert srv.conns == 0
    # the same gateway under its own name is fine: the refusal was the name, not the setup
    a.add_peer(c)
    a.ctl("create", "import", "--name", "echo-c", "--port", right, "--peer", "gw-c",
          "--export-name", "echo")
    assert h.wait_for(lambda: h.echo_roundtrip(right, b"y") == b"y", 10, "tunnel to gw-c")


def test_imports_come_and_go_without_disturbing_other_tunnels(pair):
    a, b, srv, port = pair
    s = h.connect(port, timeout=30)
    assert s.sendall(b"first") is None and s.recv(100) == b"first"
    others = []
    for i in range(3):  # each worker opens, then closes, a listener per import
        q = h.free_port()
        a.ctl("create", "import", "--name", "other%d" % i, "--port", q, "--peer", b.name,
              "--export-name", "echo")
        assert h.wait_for(lambda: h.echo_roundtrip(q, b"o") == b"o", 10, "import other%d" % i)
        others.append(q)
        s.sendall(b"during %d" % i)
        assert s.recv(100) == b"during %d" % i
    for i, q in enumerate(others):
        a.ctl("delete", "import", "--name", "other%d" % i)
        h.wait_for(lambda: not h.can_connect(q), 10, "import other%d closed" % i)
        s.sendall(b"after %d" % i)
        assert s.recv(100) == b"after %d" % i
    # and the import's own listener is still there for new clients
    assert h.echo_roundtrip(port, b"new") == b"new"
    s.close()


def restart_delays(g):
    with open(g.dp.log_path, "rb") as f:
        log = f.read().decode(errors="replace")
    return [int(x) for x in re.findall(r"restarting in (\d+) ms", log)]


def test_worker_that_cannot_start_is_retried_with_backoff(gateways):
    g = gateways("gw-a")
    key = os.path.join(g.certdir, "key.pem")
    os.rename(key, key + ".away")  # a restarted worker cannot load its key and exits
    try:
        os.kill(children(g.dp.pid)[0], signal.SIGKILL)
        h.wait_for(lambda: len(restart_delays(g)) >= 5, 20, "five restarts")
        delays = restart_delays(g)
        assert delays[:5] == [100, 200, 400, 800, 1600], delays
        assert g.dp.alive()  # the master keeps trying
        assert "cannot read key file" in g.dp.tail(20)  # and says why each worker ended
    finally:
        os.rename(key + ".away", key)
    # once it can start again it serves, and a later death starts from the shortest delay
    h.wait_for(lambda: g.ctl("status", check=False).returncode == 0, 15, "a worker serves")
    n = len(restart_delays(g))
    os.kill(children(g.dp.pid)[0], signal.SIGKILL)
    h.wait_for(lambda: len(restart_delays(g)) > n, 10, "restarted")
    assert restart_delays(g)[n] == 100
    h.wait_for(lambda: g.ctl("status", check=False).returncode == 0, 15, "serving again")


def tls_attempt(fabric, gw, **tls):
    """tls_client with gw-b's certificate: (TLS version, ALPN, bytes the server sent after our
    HTTP/2 preface), or the exception the handshake raised."""
    try:
        s, first = tls_client(fabric, gw, fabric.peer("gw-b"), gw.name, timeout=5 * h.MULT,
                              **tls)
    except (ssl.SSLError, OSError) as e:
        return e
    with s:
        return s.version(), s.selected_alpn_protocol(), len(first)


def test_tls_versions_and_alpn(gateways, fabric):
    a = gateways("gw-a")
    # TLS 1.3 and 1.2 with h2: the server's SETTINGS come back
    v, proto, n = tls_attempt(fabric, a)
    assert (v, proto) == ("TLSv1.3", "h2") and n > 0
    v, proto, n = tls_attempt(fabric, a, maxv=ssl.TLSVersion.TLSv1_2)
    assert (v, proto) == ("TLSv1.2", "h2") and n > 0
    # below 1.2: refused in the handshake
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        e = tls_attempt(fabric, a, maxv=ssl.TLSVersion.TLSv1_1, minv=ssl.TLSVersion.TLSv1_1)
    assert isinstance(e, ssl.SSLError), e
    # another application protocol: refused in the handshake (no_application_protocol)
    e = tls_attempt(fabric, a, alpn=("http/1.1",))
    assert isinstance(e, ssl.SSLError) and "application protocol" in str(e), e
    # none offered (most likely an HTTP/1.1 client): the handshake completes, and the answer
    # is an HTTP/1.1 error that says what the port speaks, then close_notify
    s, first = tls_client(fabric, a, fabric.peer("gw-b"), a.name, alpn=None, timeout=5 * h.MULT)
    with s:
        assert s.selected_alpn_protocol() is None
        got = first
        while True:
            more = s.recv(4096)  # b"" on close_notify
            if not more:
                break
            got += more
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n"), got
    assert b"Content-Length: %d\r\n" % len(body) in head, got
    assert body == b"This port speaks HTTP/2 only: the client must offer h2 by TLS ALPN.\n"
    # the same with curl, a real HTTP/1.1 client: it prints the answer rather than an empty reply
    certs = fabric.peer("gw-b")
    r = subprocess.run(
        ["curl", "-sS", "--no-alpn", "--http1.1", "-o", "-", "-w", "\n%{http_code}",
         "--cacert", fabric.ca, "--cert", os.path.join(certs, "cert.pem"),
         "--key", os.path.join(certs, "key.pem"),
         "--resolve", "%s:%d:127.0.0.1" % (a.name, a.port),
         "https://%s:%d/api/v1/peers" % (a.name, a.port)],
        capture_output=True, text=True, timeout=30 * h.MULT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("HTTP/2 only: the client must offer h2 by TLS ALPN.\n\n505"), r.stdout
    # the gateway's log says why
    h.wait_for(lambda: "client offered no ALPN protocol" in a.dp.tail(200), 10,
               "the refusal logged")
