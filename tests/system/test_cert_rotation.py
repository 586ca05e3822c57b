"""Replaced certificate files are picked up by running gateways (both daemons, no restart).

The files sit in a directory laid out the way Kubernetes mounts a Secret: cert.pem, key.pem,
ca.pem and gwctl/ are links through `..data` to a version directory, and a new version replaces
`..data` with one rename. The tests rotate the whole fabric to a new CA step by step while a
tunnel stays open, renew one gateway's certificate alone, publish files that do not go together,
and let short-lived certificates near their end; each step is checked with real handshakes,
`gwctl status` and the sockets that remain.
"""
import datetime
import hashlib
import os
import socket
import ssl
import subprocess
import time

import pytest

import clharness as h
from test_e2e_basic import link

CHECK_MS = "200"


class SecretDir:
    """cert.pem, key.pem, ca.pem and gwctl/{cert,key}.pem, published atomically as a version."""

    def __init__(self, root):
        self.dir = root
        self.version = 0
        os.makedirs(root)
        for name in ("cert.pem", "key.pem", "ca.pem", "gwctl"):
            os.symlink(os.path.join("..data", name), os.path.join(root, name))

    def publish(self, peer_dir, cas, key_dir=None):
        """The gateway and admin certificates of `peer_dir` (a fabric's <peer> directory), the
        key of `key_dir` (default: the same), a CA bundle of the files `cas`."""
        self.version += 1
        v = os.path.join(self.dir, "..v%d" % self.version)
        os.makedirs(os.path.join(v, "gwctl"))
        key_dir = key_dir or peer_dir
        for src, dst in ((os.path.join(peer_dir, "cert.pem"), "cert.pem"),
                         (os.path.join(key_dir, "key.pem"), "key.pem"),
                         (os.path.join(peer_dir, "gwctl", "cert.pem"), "gwctl/cert.pem"),
                         (os.path.join(peer_dir, "gwctl", "key.pem"), "gwctl/key.pem")):
            with open(src, "rb") as f, open(os.path.join(v, dst), "wb") as g:
                g.write(f.read())
        with open(os.path.join(v, "ca.pem"), "wb") as g:
            for ca in cas:
                with open(ca, "rb") as f:
                    g.write(f.read())
        tmp = os.path.join(self.dir, "..data_tmp")
        os.symlink(os.path.basename(v), tmp)
        os.rename(tmp, os.path.join(self.dir, "..data"))


class SecretFabric:
    """What h.Gateway needs from a fabric, pointing at a SecretDir."""

    def __init__(self, secret):
        self.secret = secret

    def peer(self, peer):
        return self.secret.dir

    @property
    def ca(self):
        return os.path.join(self.secret.dir, "ca.pem")


def log_count(proc, text):
    with open(proc.log_path, "rb") as f:
        return f.read().decode(errors="replace").count(text)


def wait_reloads(gws, n):
    """Until every daemon of `gws` has logged its n-th reload."""
    for g in gws:
        for proc in (g.cp, g.dp):
            h.wait_for(lambda: log_count(proc, "certificate files reloaded") >= n, 10,
                       "%s reload %d" % (proc.name, n))


def handshake(g, ca, admin_dir):
    """A TLS client of the public port with the admin certificate of `admin_dir`, trusting
    `ca`: the DER of the certificate the gateway presents (raises if refused)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(os.path.join(admin_dir, "cert.pem"), os.path.join(admin_dir, "key.pem"))
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname=g.name) as s:
        # TLS 1.3: a refused client certificate shows on the first read
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        if not s.recv(100):
            raise ConnectionResetError("closed without a word")
        return s.getpeercert(binary_form=True)


def der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def cert_status(g):
    return g.ctl_json("status")["certificate"]


def worker_certs(g):
    """The certificate each dataplane worker reports (status, per worker)."""
    return [w.get("certificate", {}) for w in g.ctl_json("status")["workers"]]


def workers_serve(g, sha, n=1):
    """Until all n workers of g report `sha` and no refusal."""
    h.wait_for(lambda: [(c.get("sha256"), c.get("reloadError")) for c in worker_certs(g)] ==
               [(sha, "")] * n, 10, "workers of %s serving %s" % (g.name, sha[:16]))


def sha256_of(path):
    return hashlib.sha256(der(path)).hexdigest()


def conns_to(g):
    """Local ports of the established TCP connections to g's public port (pooled dataplane
    connections and controlplane health connections of the other gateway, gwctl's)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "( dport = :%d )" % g.port],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[2] for line in out.splitlines() if line.strip()}


def reachable(g, peer):
    for p in g.ctl_json("get", "peer"):
        if p["metadata"]["name"] == peer:
            return p.get("status", {}).get("reachable")
    return None


def linked(a, b, echo):
    """gw-a imports an echo service from gw-b: the import port, once a byte made the trip."""
    srv = echo()
    port = h.free_port()
    link(a, b, srv.port, port)
    h.wait_for(lambda: h.echo_roundtrip(port, b"x") == b"x", 10, "tunnel up")
    return port


def same_ca_cert(workdir, fabric, name, peer, days):
    """A new certificate and key for `peer` from `fabric`'s CA, valid `days`: its directory."""
    d = os.path.join(workdir, name)
    os.makedirs(d)
    for f in ("ca.pem", "ca.key"):
        with open(os.path.join(fabric.dir, f), "rb") as src, \
                open(os.path.join(d, f), "wb") as dst:
            dst.write(src.read())
    h.run([h.GWCTL, "create", "peer-cert", "--name", peer, "--fabric", d, "--days", str(days)])
    return os.path.join(d, peer)


@pytest.fixture
def rotating(workdir):
    """Two gateways on SecretDirs holding fabric f1's material; yields (a, b, f1, f2, dirs)."""
    f1 = h.Fabric(workdir, name="f1")
    f2 = h.Fabric(workdir, name="f2")
    gws, secrets = [], {}
    try:
        for name in ("gw-a", "gw-b"):
            sd = SecretDir(os.path.join(workdir, "secret-" + name))
            sd.publish(f1.peer(name), [f1.ca])
            secrets[name] = sd
            g = h.Gateway(SecretFabric(sd), name, workdir,
                          extra_cp=["--cert-check-interval", CHECK_MS],
                          extra_dp=["--cert-check-interval", CHECK_MS])
            gws.append(g)
            g.start()
        yield gws[0], gws[1], f1, f2, secrets
    finally:
        bad = ["%s exited %s" % (n, rc) for g in gws for n, rc in g.stop().items() if rc != 0]
        assert not bad, bad


def test_rotation_to_a_new_ca_keeps_open_tunnels(rotating, echo):
    a, b, f1, f2, secrets = rotating
    port = linked(a, b, echo)
    h.wait_for(lambda: reachable(a, "gw-b") is True, 10, "gw-b reachable")
    old = h.connect(port)  # a tunnel made with f1's material, open throughout
    old.sendall(b"before")
    assert old.recv(100) == b"before"
    made_with_f1 = conns_to(a) | conns_to(b)
    assert made_with_f1
    assert handshake(b, f1.ca, f1.peer("gw-a") + "/gwctl") == der(f1.peer("gw-b") + "/cert.pem")
    st = cert_status(b)
    assert st["sha256"] == sha256_of(f1.peer("gw-b") + "/cert.pem") and st["reloadError"] == ""

    # 1. both CAs trusted
    for name in ("gw-a", "gw-b"):
        secrets[name].publish(f1.peer(name), [f1.ca, f2.ca])
    wait_reloads((a, b), 1)
    # 2. every certificate from f2 (gwctl's too: it reads its files on every run)
    for name in ("gw-a", "gw-b"):
        secrets[name].publish(f2.peer(name), [f1.ca, f2.ca])
    wait_reloads((a, b), 2)
    assert handshake(b, f2.ca, f2.peer("gw-a") + "/gwctl") == der(f2.peer("gw-b") + "/cert.pem")
    assert cert_status(b)["sha256"] == sha256_of(f2.peer("gw-b") + "/cert.pem")
    workers_serve(b, sha256_of(f2.peer("gw-b") + "/cert.pem"))
    # 3. f1 no longer trusted: its certificates are refused from now on
    for name in ("gw-a", "gw-b"):
        secrets[name].publish(f2.peer(name), [f2.ca])
    wait_reloads((a, b), 3)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        handshake(b, f2.ca, f1.peer("gw-a") + "/gwctl")
    assert handshake(a, f2.ca, f2.peer("gw-b") + "/gwctl") == der(f2.peer("gw-a") + "/cert.pem")
    assert b.ctl_json("get", "export")[0]["metadata"]["name"] == "echo"

    # the tunnel made at the start still carries bytes both ways
    old.sendall(b"after")
    assert old.recv(100) == b"after"
    old.close()
    # new connections: the pooled connection was retired at each reload, so this one is dialled
    # with f2's material on both ends, which only works if both dataplanes reloaded both ways
    payload = os.urandom(1 << 20)
    assert h.sha256(h.echo_roundtrip(port, payload, timeout=20)) == h.sha256(payload)
    # the controlplanes' health connections were replaced too, and gw-b's f2-only CA admits
    # gw-a's controlplane only with f2's material (and the other way round)
    time.sleep(1.5)
    assert reachable(a, "gw-b") is True
    assert reachable(b, "gw-a") is True
    st = [p for p in a.ctl_json("get", "peer") if p["metadata"]["name"] == "gw-b"][0]["status"]
    assert st["lastError"] == ""
    # nothing made with f1's material is left: retired connections closed once their streams
    # ended, and everything since was dialled anew
    now = conns_to(a) | conns_to(b)
    assert now and not (now & made_with_f1), (made_with_f1, now)


def test_unusable_files_are_reported_once_and_the_old_ones_serve(rotating, echo):
    a, b, f1, f2, secrets = rotating
    port = linked(a, b, echo)
    # gw-b's certificate with another gateway's key: unusable
    secrets["gw-b"].publish(f1.peer("gw-b"), [f1.ca], key_dir=f1.peer("gw-a"))
    for proc in (b.cp, b.dp):
        h.wait_for(lambda: log_count(proc, "certificate files changed but cannot be used") >= 1,
                   10, "%s refusal" % proc.name)
    time.sleep(1.0)  # five more checks of the same files: no more reports
    for proc in (b.cp, b.dp):
        assert log_count(proc, "certificate files changed but cannot be used") == 1, proc.tail()
        assert log_count(proc, "does not match") >= 1, proc.tail()
        assert log_count(proc, "certificate files reloaded") == 0
    # gwctl status says so until it is mended, and still shows the certificate in use
    st = cert_status(b)
    assert "does not match" in st["reloadError"], st
    assert st["sha256"] == sha256_of(f1.peer("gw-b") + "/cert.pem")
    h.wait_for(lambda: all("does not match" in c["reloadError"] for c in worker_certs(b)), 5,
               "the worker's refusal in status")
    assert worker_certs(b)[0]["sha256"] == st["sha256"]
    table = b.ctl("status").stdout
    assert "certificate" in table and "does not match" in table, table
    assert any(line.startswith("0 ") and "does not match" in line
               for line in table.splitlines()), table  # the worker's row
    # the old material keeps serving: handshakes and new tunnels work
    assert handshake(b, f1.ca, f1.peer("gw-a") + "/gwctl") == der(f1.peer("gw-b") + "/cert.pem")
    assert h.echo_roundtrip(port, b"still") == b"still"
    # mended: picked up at the next check
    secrets["gw-b"].publish(f1.peer("gw-b"), [f1.ca])
    wait_reloads((b,), 1)
    assert h.echo_roundtrip(port, b"again") == b"again"
    assert cert_status(b)["reloadError"] == ""
    workers_serve(b, st["sha256"])


def test_refusal_by_the_dataplane_alone_shows_per_worker(workdir):
    """The dataplane reads its own copy of the files (a deployment may mount them apart): when
    only that copy goes wrong, only its workers report it; the controlplane's line stays clean."""
    f1 = h.Fabric(workdir, name="f1")
    cp_dir = SecretDir(os.path.join(workdir, "secret-cp"))
    dp_dir = SecretDir(os.path.join(workdir, "secret-dp"))
    for sd in (cp_dir, dp_dir):
        sd.publish(f1.peer("gw-b"), [f1.ca])
    g = h.Gateway(SecretFabric(cp_dir), "gw-b", workdir, workers=2,
                  extra_cp=["--cert-check-interval", CHECK_MS],
                  extra_dp=["--cert-check-interval", CHECK_MS,
                            "--cert", os.path.join(dp_dir.dir, "cert.pem"),
                            "--key", os.path.join(dp_dir.dir, "key.pem"),
                            "--ca", os.path.join(dp_dir.dir, "ca.pem")])
    try:
        g.start()
        sha = sha256_of(f1.peer("gw-b") + "/cert.pem")
        workers_serve(g, sha, 2)
        dp_dir.publish(f1.peer("gw-b"), [f1.ca], key_dir=f1.peer("gw-a"))
        h.wait_for(lambda: [("does not match" in c["reloadError"], c["sha256"])
                            for c in worker_certs(g)] == [(True, sha)] * 2, 10,
                   "both workers' refusal in status")
        assert cert_status(g)["reloadError"] == ""
        rows = [line for line in g.ctl("status").stdout.splitlines()
                if line[:1] in "01" and "does not match" in line]
        assert len(rows) == 2, rows
        dp_dir.publish(f1.peer("gw-b"), [f1.ca])
        workers_serve(g, sha, 2)
    finally:
        rcs = g.stop()
    assert all(rc == 0 for rc in rcs.values()), rcs


def test_renewed_own_certificate_redials_peers(rotating, workdir, echo):
    """Only gw-a's files change (a new key and certificate from the same CA): gw-b does nothing,
    so it is gw-a's dataplane and controlplane that must put their connections to gw-b aside."""
    a, b, f1, f2, secrets = rotating
    port = linked(a, b, echo)
    h.wait_for(lambda: reachable(a, "gw-b") is True, 10, "gw-b reachable")
    before = conns_to(b)
    renewed = same_ca_cert(workdir, f1, "f1-renewed", "gw-a", 365)
    secrets["gw-a"].publish(renewed, [f1.ca])
    wait_reloads((a,), 1)
    assert handshake(a, f1.ca, f1.peer("gw-b") + "/gwctl") == \
        der(os.path.join(renewed, "cert.pem"))
    st = cert_status(a)
    assert st["sha256"] == sha256_of(os.path.join(renewed, "cert.pem"))
    nb, na = (datetime.datetime.strptime(st[k], "%Y-%m-%dT%H:%M:%SZ") for k in
              ("notBefore", "notAfter"))
    assert na - nb == datetime.timedelta(days=365, hours=1), st  # peer-cert: 365 d, 1 h back
    assert h.echo_roundtrip(port, b"renewed") == b"renewed"
    time.sleep(1.5)  # a health probe or more
    assert reachable(a, "gw-b") is True
    after = conns_to(b)
    assert after and not (after & before), (before, after)


def test_expiring_certificate_is_logged_once_a_day(rotating, workdir):
    a, b, f1, f2, secrets = rotating

    def warned():
        """Expiry warnings about the short certificates (1 day, backdated an hour: "expires in
        24 h" or 23)."""
        return sum(log_count(b.cp, "the certificate (%s) expires in " % sha) for sha in shas)
    shas = []
    short = same_ca_cert(workdir, f1, "short1", "gw-b", 1)
    shas.append(sha256_of(short + "/cert.pem"))
    secrets["gw-b"].publish(short, [f1.ca])
    wait_reloads((b,), 1)
    h.wait_for(lambda: warned() == 1, 10, "expiry warning")
    time.sleep(1.0)  # five more checks: the next warning is a day away
    assert warned() == 1, b.cp.tail()
    # a year-long certificate: nothing to say; another short one is judged afresh
    secrets["gw-b"].publish(f1.peer("gw-b"), [f1.ca])
    wait_reloads((b,), 2)
    short = same_ca_cert(workdir, f1, "short2", "gw-b", 1)
    shas.append(sha256_of(short + "/cert.pem"))
    secrets["gw-b"].publish(short, [f1.ca])
    wait_reloads((b,), 3)
    h.wait_for(lambda: warned() == 2, 10, "second expiry warning")
