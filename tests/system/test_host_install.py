"""A plain-host install (docs/hosts.md): `cmake --install` lays out the binaries, the systemd
units, the sysusers.d entry and the example /etc/clusterlink/gateway.env; systemd's own tools
accept the units and the entry; and two gateways started with exactly the units' ExecStart
lines, filled from the example file the way systemd fills them, carry a byte between them.
No systemd runs here: the command lines are what is exercised, with /run/clusterlink and
/var/lib/clusterlink mapped to the test's directories."""
import os
import re
import shlex
import subprocess

import clharness as h
from test_access_log import access_lines
from test_e2e_basic import link

UNITS = ("clusterlink-controlplane", "clusterlink-dataplane")


def install(tmp_path):
    prefix = str(tmp_path / "usr")
    r = subprocess.run(["cmake", "--install", h.BIN, "--prefix", prefix],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return prefix


def unit_exec(path):
    """The ExecStart line of a unit file, continuation lines joined."""
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    m = re.search(r"^ExecStart=(.*)$", text, re.M)
    assert m, path
    return m.group(1)


def read_env(path):
    """KEY=value lines of an EnvironmentFile (no quoting is used in ours)."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                env[k] = v
    return env


def expand(cmdline, env):
    """systemd's expansion: ${VAR} is one word, $VAR splits on whitespace (empty: no word)."""
    words = []
    for w in shlex.split(cmdline):
        m = re.fullmatch(r"\$(\w+)", w)
        if m:
            words += env.get(m.group(1), "").split()
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], w))
    return words


class UnitGateway(h.Gateway):
    """A gateway whose two processes run the installed units' command lines."""

    def __init__(self, fabric, name, workdir, prefix):
        super().__init__(fabric, name, workdir)
        self.prefix = prefix
        self.port = h.free_port()  # what the unit's ${CL_LISTEN} will say
        self.env_file = read_env(os.path.join(prefix, "share/doc/clusterlink/gateway.env.example"))
        self.env_file.update({
            "CL_NAME": name, "CL_CERT": os.path.join(self.certdir, "cert.pem"),
            "CL_KEY": os.path.join(self.certdir, "key.pem"), "CL_CA": fabric.ca,
            "CL_IMPORT_BIND": "127.0.0.1"})

    def command(self, unit, binary, args_var, extra, **env):
        """The unit's ExecStart, expanded with the example file plus `env`, and `extra` added to
        its free-form flags variable."""
        line = unit_exec(os.path.join(self.prefix, "lib/systemd/system", unit + ".service"))
        line = line.replace("/run/clusterlink", self.dir).replace("/var/lib/clusterlink",
                                                                   self.data)
        env = dict(self.env_file, **env)
        env[args_var] = " ".join([env.get(args_var, "")] + extra)
        cmd = expand(line, env)
        assert cmd[0] == os.path.join(self.prefix, "bin", binary), cmd
        return cmd

    def cp_command(self, ready):
        return self.command(UNITS[0], "cl-controlplane", "CL_CONTROLPLANE_ARGS",
                            ["--ready-file", ready])

    def dp_command(self, ready, listen):
        return self.command(UNITS[1], "cl-dataplane", "CL_DATAPLANE_ARGS",
                            ["--ready-file", ready, "--workers", "1"], CL_LISTEN=listen)


def test_install_layout_and_systemd_checks(tmp_path):
    prefix = install(tmp_path)
    for f in ("bin/cl-controlplane", "bin/cl-dataplane", "bin/gwctl"):
        assert os.access(os.path.join(prefix, f), os.X_OK), f
    v = subprocess.run([os.path.join(prefix, "bin/gwctl"), "version"], capture_output=True,
                       text=True)
    assert v.returncode == 0 and v.stdout.startswith("gwctl "), v
    units = [os.path.join(prefix, "lib/systemd/system", u + ".service") for u in UNITS]
    for u in units:
        # the binaries under the prefix given at install time, not at configure time
        assert unit_exec(u).startswith(os.path.join(prefix, "bin/cl-")), unit_exec(u)
    # systemd's own parser: an unknown key, a bad value or a missing binary is reported
    r = subprocess.run(["systemd-analyze", "verify"] + units, capture_output=True, text=True,
                       cwd=str(tmp_path), timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    r = subprocess.run(["systemd-sysusers", "--root", str(root),
                        os.path.join(prefix, "lib/sysusers.d/clusterlink.conf")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    with open(root / "etc/passwd") as f:
        assert re.search(r"^clusterlink:x:\d+:\d+:[^:]*:/var/lib/clusterlink:", f.read(), re.M)
    assert os.path.exists(os.path.join(prefix, "share/doc/clusterlink/hosts.md"))


def test_gateways_started_as_the_units_start_them(tmp_path, fabric, workdir, echo):
    prefix = install(tmp_path)
    gws = []
    try:
        for n in ("gw-a", "gw-b"):
            g = UnitGateway(fabric, n, workdir, prefix)
            g.start()
            gws.append(g)
        a, b = gws
        srv = echo()
        port = h.free_port()
        link(a, b, srv.port, port)
        assert h.wait_for(lambda: h.echo_roundtrip(port, b"via units"), 10, "tunnel") == \
            b"via units"
        # the example file's CL_DATAPLANE_ARGS (--access-log) reached the dataplane
        h.wait_for(lambda: access_lines(b), 10, "access lines on gw-b")
        assert os.path.exists(os.path.join(b.data, "data.mdb"))  # the state where the unit says
    finally:
        for g in gws:
            rcs = g.stop()
            assert all(rc == 0 for rc in rcs.values()), rcs
