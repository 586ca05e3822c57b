"""The daemons' command lines: every flag is documented by --help, and a bad value is refused
with exit code 2 and a message that names the flag and what it accepts (before anything is
started, so no state is touched)."""
import os
import re
import subprocess

import pytest

import clharness as h

DATAPLANE_BASE = ["--socket", "/nonexistent/cp.sock", "--listen", "127.0.0.1:0",
                  "--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem",
                  "--ca", "/nonexistent/ca.pem"]
CONTROLPLANE_BASE = ["--name", "east", "--data-dir", "/nonexistent/d",
                     "--socket", "/nonexistent/cp.sock", "--cert", "/nonexistent/c.pem",
                     "--key", "/nonexistent/k.pem", "--ca", "/nonexistent/ca.pem"]


def run(binary, *args):
    return subprocess.run([binary] + list(args), capture_output=True, text=True,
                          timeout=20 * h.MULT)


SRC = os.path.join(os.path.dirname(__file__), "../..")


def documented_flags(binary):
    r = run(binary, "--help")
    assert r.returncode == 0 and r.stderr == ""
    return set(re.findall(r"(?m)^\s+(?:-h, )?--([a-z0-9-]+)", r.stdout))


def getopt_flags(main_c):
    """The long options main.c's getopt_long table accepts."""
    with open(os.path.join(SRC, main_c)) as f:
        return set(re.findall(r'\{"([a-z0-9-]+)", (?:no|required|optional)_argument', f.read()))


@pytest.mark.parametrize("binary, main_c", [
    (h.DATAPLANE, "dataplane/main.c"),
    (h.CONTROLPLANE, "controlplane/main.c"),
])
def test_help_documents_every_flag(binary, main_c):
    accepted = getopt_flags(main_c)
    assert len(accepted) > 10  # the table was found
    assert documented_flags(binary) == accepted


@pytest.mark.parametrize("binary", [h.DATAPLANE, h.CONTROLPLANE])
def test_configuration_doc_shows_the_current_help(binary):
    """docs/configuration.md quotes each daemon's --help whole: it must not drift."""
    with open(os.path.join(SRC, "docs/configuration.md")) as f:
        doc = f.read()
    text = run(binary, "--help").stdout
    assert text.startswith("usage: ") and text in doc


@pytest.mark.parametrize("binary, base, flag, value, message", [
    (h.DATAPLANE, DATAPLANE_BASE, "workers", "0", "cl-dataplane: --workers must be 1..256"),
    (h.DATAPLANE, DATAPLANE_BASE, "workers", "two", "cl-dataplane: --workers must be 1..256"),
    (h.DATAPLANE, DATAPLANE_BASE, "drain-timeout", "3600001",
     "cl-dataplane: --drain-timeout must be 0..3600000 ms"),
    (h.DATAPLANE, DATAPLANE_BASE, "idle-timeout", "-1",
     "cl-dataplane: --idle-timeout must be 0..604800000 ms"),
    (h.DATAPLANE, DATAPLANE_BASE, "conn-idle-timeout", "5m",
     "cl-dataplane: --conn-idle-timeout must be 0..604800000 ms"),
    (h.DATAPLANE, DATAPLANE_BASE, "worker-id", "1001",
     "cl-dataplane: --worker-id must be 0..1000"),
    (h.DATAPLANE, DATAPLANE_BASE, "log-level", "loud",
     "cl-dataplane: --log-level must be error, warn, info, debug or trace"),
    (h.CONTROLPLANE, CONTROLPLANE_BASE, "health-interval", "9",
     "cl-controlplane: --health-interval must be 10..3600000 ms"),
    (h.CONTROLPLANE, CONTROLPLANE_BASE, "health-timeout", "",
     "cl-controlplane: --health-timeout must be 10..3600000 ms"),
    (h.CONTROLPLANE, CONTROLPLANE_BASE, "health-fail-threshold", "101",
     "cl-controlplane: --health-fail-threshold must be 1..100"),
    (h.CONTROLPLANE, CONTROLPLANE_BASE, "health-ok-threshold", "0",
     "cl-controlplane: --health-ok-threshold must be 1..100"),
    (h.CONTROLPLANE, CONTROLPLANE_BASE, "log-level", "WARN",
     "cl-controlplane: --log-level must be error, warn, info, debug or trace"),
    (h.CONTROLPLANE, CONTROLPLANE_BASE, "k8s-lease-duration", "0",
     "cl-controlplane: --k8s-lease-duration must be 1..3600 s"),
    (h.CONTROLPLANE, CONTROLPLANE_BASE, "store-size", "0",
     "cl-controlplane: --store-size must be 1..1048576 MiB"),
])
def test_bad_value_is_refused_with_a_clear_message(binary, base, flag, value, message):
    r = run(binary, *base, "--" + flag, value)
    assert r.returncode == 2, r
    assert r.stderr == message + "\n"
    assert r.stdout == ""
