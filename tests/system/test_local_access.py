"""What another local user can reach. Whoever connects to the controlplane's IPC socket is
trusted as a dataplane worker (it relays REST requests with the caller's certificate identity,
so it could act as any admin), so the socket is owner and group only whatever the umask; the
state directory and its LMDB files are the owner's alone."""
import os
import shutil
import socket
import stat
import subprocess
import tempfile

import pytest

import clharness as h

NOBODY = 65534

PROBE = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print("connected")
except OSError as e:
    print(e.errno)
"""


def connect_as_nobody(path):
    """What an unprivileged user gets when connecting to the Unix socket at path."""
    r = subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY),
                        "--clear-groups", "/usr/bin/python3", "-c", PROBE, path],
                       capture_output=True, text=True, timeout=20 * h.MULT)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture
def opendir():
    """A work directory every user may traverse (mkdtemp's is 0700), so only the socket's own
    mode decides who connects."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    d = tempfile.mkdtemp(prefix="cl-local-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_ipc_socket_and_state_are_private_whatever_the_umask(opendir):
    fabric = h.Fabric(opendir)
    g = h.Gateway(fabric, "gw-a", opendir)
    os.chmod(g.dir, 0o755)
    # the probe works: a socket anyone may write to is reached by nobody
    open_sock = socket.socket(socket.AF_UNIX)
    open_sock.bind(os.path.join(opendir, "open.sock"))
    open_sock.listen(1)
    os.chmod(os.path.join(opendir, "open.sock"), 0o777)
    assert connect_as_nobody(os.path.join(opendir, "open.sock")) == "connected"
    open_sock.close()

    old = os.umask(0)  # the daemon inherits it: without its own care everything is 0777/0666
    try:
        g.start_cp()
    finally:
        os.umask(old)
    try:
        mode = stat.S_IMODE(os.stat(g.sock).st_mode)
        assert mode == 0o660, oct(mode)
        assert connect_as_nobody(g.sock) == "13"  # EACCES
        assert stat.S_IMODE(os.stat(g.data).st_mode) == 0o700
        for f in os.listdir(g.data):
            assert stat.S_IMODE(os.stat(os.path.join(g.data, f)).st_mode) == 0o600, f
    finally:
        assert g.cp.stop() == 0
