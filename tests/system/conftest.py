import os
import shutil
import tempfile

import pytest

import clharness as h


@pytest.fixture
def workdir():
    base = os.environ.get("CL_TEST_TMP") or None
    d = tempfile.mkdtemp(prefix="cl-sys-", dir=base)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fabric(workdir):
    return h.Fabric(workdir)


@pytest.fixture
def gateways(fabric, workdir):
    """Factory: gateways("a", "b") starts them (extra_dp: more cl-dataplane flags for each);
    all are stopped (and must exit 0) at the end."""
    started = []

    def make(*names, workers=1, extra_dp=()):
        gws = []
        for n in names:
            g = h.Gateway(fabric, n, workdir, workers=workers, extra_dp=extra_dp)
            started.append(g)
            gws.append(g.start())
        return gws if len(gws) > 1 else gws[0]

    yield make
    bad = []
    for g in started:
        for name, rc in g.stop().items():
            if rc != 0:
                bad.append("%s exited %s" % (name, rc))
    assert not bad, bad


@pytest.fixture
def echo():
    servers = []

    def make(tag=b""):
        s = h.EchoServer(tag)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
