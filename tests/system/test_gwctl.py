"""gwctl on its own: certificates, contexts and the errors it reports, with no gateway running
(or a plain TLS server standing in for one)."""
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading

import pytest

import clharness as h

OPENSSL = shutil.which("openssl")


def gwctl(*args, env=None, input=None):
    return h.run([h.GWCTL] + [str(a) for a in args], env=env, check=False, input=input)


def one_error_line(p):
    assert p.returncode != 0, p.stdout
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def env(workdir):
    e = dict(os.environ)
    e["XDG_CONFIG_HOME"] = os.path.join(workdir, "xdg")
    return e


def test_fabric_and_peer_certs(workdir):
    fab = h.Fabric(workdir)
    d = fab.peer("east")
    assert mode(os.path.join(fab.dir, "ca.key")) == 0o600
    assert mode(os.path.join(d, "key.pem")) == 0o600
    assert mode(os.path.join(d, "gwctl", "key.pem")) == 0o600
    # never overwritten
    line = one_error_line(gwctl("create", "fabric", "--name", "fabric", "--dir", workdir))
    assert "already exists" in line
    line = one_error_line(gwctl("create", "peer-cert", "--name", "east", "--fabric", fab.dir))
    assert "already exist" in line
    if OPENSSL is None:
        pytest.skip("openssl not installed")
    for cert in (os.path.join(d, "cert.pem"), os.path.join(d, "gwctl", "cert.pem")):
        p = subprocess.run([OPENSSL, "verify", "-CAfile", fab.ca, cert], capture_output=True,
                           text=True)
        assert p.returncode == 0, p.stdout + p.stderr
    text = subprocess.run([OPENSSL, "x509", "-noout", "-text", "-in", os.path.join(d, "cert.pem")],
                          capture_output=True, text=True).stdout
    assert "DNS:east" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    text = subprocess.run([OPENSSL, "x509", "-noout", "-text", "-in",
                           os.path.join(d, "gwctl", "cert.pem")], capture_output=True,
                          text=True).stdout
    assert "DNS:gwctl.east" in text
    assert "CN = gwctl.east" in text
    assert "TLS Web Server Authentication" not in text


def test_contexts(workdir, env):
    fab = h.Fabric(workdir)
    for name in ("east", "west"):
        d = fab.peer(name)
        p = gwctl("init", "--id", name, "--host", "127.0.0.1", "--port", "1", "--ca", fab.ca,
                  "--cert", os.path.join(d, "gwctl", "cert.pem"),
                  "--key", os.path.join(d, "gwctl", "key.pem"), env=env)
        assert p.returncode == 0, p.stderr
    cfg = os.path.join(env["XDG_CONFIG_HOME"], "gwctl", "config.json")
    assert mode(cfg) == 0o600
    assert gwctl("config", "current-context", env=env).stdout == "west\n"
    assert gwctl("config", "use-context", "east", env=env).returncode == 0
    assert gwctl("config", "current-context", env=env).stdout == "east\n"
    ctxs = json.loads(gwctl("config", "get-contexts", "-o", "json", env=env).stdout)
    assert [c["id"] for c in ctxs["contexts"]] == ["east", "west"]
    assert ctxs["current-context"] == "east"


def test_init_reports_bad_files(workdir, env):
    fab = h.Fabric(workdir)
    east, west = fab.peer("east"), fab.peer("west")
    junk = os.path.join(workdir, "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    base = ["init", "--id", "east", "--host", "127.0.0.1", "--port", "1", "--ca", fab.ca]
    cert = os.path.join(east, "gwctl", "cert.pem")
    key = os.path.join(east, "gwctl", "key.pem")
    line = one_error_line(gwctl(*base, "--cert", junk, "--key", key, env=env))
    assert "junk.pem" in line
    if not os.environ.get("CL_SYSTEM_WOLFSSL"):  # Debian's build cannot tell at load time
        line = one_error_line(gwctl(*base, "--cert", cert, "--key",
                                    os.path.join(west, "gwctl", "key.pem"), env=env))
        assert "key" in line
    line = one_error_line(gwctl(*base, "--cert", cert, "--key", key + ".missing", env=env))
    assert "No such file" in line
    assert not os.path.exists(os.path.join(env["XDG_CONFIG_HOME"], "gwctl", "config.json"))


def init_ctx(fab, env, name, port, host="127.0.0.1"):
    d = fab.peer(name)
    p = gwctl("init", "--id", name, "--host", host, "--port", port, "--ca", fab.ca,
              "--cert", os.path.join(d, "gwctl", "cert.pem"),
              "--key", os.path.join(d, "gwctl", "key.pem"), env=env)
    assert p.returncode == 0, p.stderr


def test_unreachable_gateway(workdir, env):
    fab = h.Fabric(workdir)
    port = h.free_port()  # nothing listens there
    init_ctx(fab, env, "east", port)
    line = one_error_line(gwctl("status", env=env))
    assert line == "error: cannot reach gateway at 127.0.0.1:%d: connection refused" % port


class TlsStandIn:
    """A TLS server (ALPN h2, client certificate required) that only handshakes."""

    def __init__(self, ca, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.load_verify_locations(ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.set_alpn_protocols(["h2"])
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(10)
                self.ctx.wrap_socket(c, server_side=True).close()
            except (OSError, ssl.SSLError):
                c.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("case", ["wrong-name", "wrong-ca"])
def test_gateway_certificate_problems(workdir, env, case):
    fab = h.Fabric(workdir)
    if case == "wrong-name":
        d = fab.peer("west")  # same CA, but it is not "east"
        srv = TlsStandIn(fab.ca, os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
    else:
        other = h.Fabric(workdir, "other")
        d = other.peer("east")  # the right name from a CA we do not trust
        srv = TlsStandIn(fab.ca, os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
    try:
        init_ctx(fab, env, "east", srv.port)
        line = one_error_line(gwctl("get", "peer", env=env))
        assert "certificate" in line
        assert "127.0.0.1:%d" % srv.port in line
    finally:
        srv.close()


def test_usage_errors_exit_2(env):
    p = gwctl("create", "import", "--name", "x", env=env)
    assert p.returncode == 2
    assert p.stderr == "error: missing --port\n"
    p = gwctl("get", "import", "--help", env=env)
    assert p.returncode == 0 and "--name NAME" in p.stdout
