"""The benchmark script (tests/bench/bench.py) runs end to end against the real binaries: a tiny
run of every metric through the gateway pair and directly, so that the benchmark the docs quote
keeps working as the code changes. It measures nothing worth keeping and asserts no speed: only
that every figure was taken, and that the report and its target table were printed."""
import json
import os
import subprocess

import clharness as h

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench", "bench.py")


def test_bench_runs_every_metric_through_the_gateway_pair(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(
        [BENCH, "--paths", "direct gateway", "--metrics", "iperf1 iperf8 wrkclose wrkka idle",
         "--reps", "1", "--dur", "1", "--idle", "50", "--conns", "8", "--build", h.BIN,
         "--out", str(out)],
        capture_output=True, text=True, timeout=300 * h.MULT)
    assert r.returncode == 0, r.stderr[-4000:]
    with open(out / "results.json") as f:
        res = json.load(f)
    failed = [k for k in res if k.endswith("|failed")]
    assert not failed, (failed, r.stderr[-4000:])
    for path in ("direct", "gateway"):
        for key in ("iperf1|gbit/s", "iperf8|gbit/s", "wrkclose|req/s", "wrkka|req/s",
                    "wrkka|p99 ms"):
            assert res["%s|%s" % (path, key)][0] > 0, (path, key, res)
    assert res["gateway|idle|bytes/conn"][0] > 0
    # the tunnel's CPU is measured (per GB, per request)
    assert res["gateway|iperf1|tunnel cpu ms/GB"][0] > 0
    assert res["gateway|wrkclose|tunnel cpu us/req"][0] > 0
    # the report: a table per figure, then the targets (judged against "direct" only where a
    # target names no pair: idle memory)
    assert "| iperf1 gbit/s | median |" in r.stdout
    assert "| target (dataplane issue) | this run | |" in r.stdout
    assert "idle memory per connection <= 16 KiB" in r.stdout
    # the report says when its TCP is not that of the reference figures (pacing)
    with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
        cc = f.read().strip()
    with open("/proc/sys/net/core/default_qdisc") as f:
        qdisc = f.read().strip()
    assert ("BBR without the fq qdisc" in r.stdout) == (cc == "bbr" and qdisc != "fq"), r.stdout
    assert "Traceback" not in r.stderr, r.stderr[-4000:]
    # the daemons it started with files in its cl-bench-* directory (nginx, the gateways) are
    # stopped
    left = subprocess.run(["pgrep", "-af", "/tmp/cl-bench-"], capture_output=True, text=True)
    assert left.stdout == "", left.stdout
