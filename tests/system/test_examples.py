"""The documented examples and the demo run and show what docs/examples.md says they show."""
import os
import re
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def run(script, *args):
    env = dict(os.environ, BUILD_DIR=os.environ.get("CL_BIN_DIR", "build"))
    p = subprocess.run([os.path.join(ROOT, script)] + list(args), env=env, capture_output=True,
                       text=True, timeout=300)
    out = re.sub(r"\x1b\[[0-9;]*m", "", p.stdout)
    assert p.returncode == 0, out[-3000:] + p.stderr[-2000:]
    return out


def section(out, title):
    return out.split("== " + title, 1)[1].split("\n== ", 1)[0]


def pages(text):
    return re.findall(r"^productpage -> (reviews v\d)", text, re.M)


def test_bookinfo():
    out = run("docs/examples/bookinfo.sh")
    rr = pages(section(out, "front imports reviews"))
    assert sorted(set(rr)) == ["reviews v1", "reviews v2"]
    assert all(a != b for a, b in zip(rr, rr[1:]))  # strict alternation
    assert set(pages(section(out, "books-v2 denies the front end"))) == {"reviews v1"}
    assert set(pages(section(out, "the deny is lifted"))) == {"reviews v1"}
    assert set(pages(section(out, "books-v1 stops exporting"))) == {"reviews v2"}


def test_iperf3_example():
    out = run("docs/examples/iperf3.sh", "1")
    m = re.search(r"direct \(no tunnel\)\s+([\d.]+) Gbit/s\n.*through east -> west \(mTLS\)\s+"
                  r"([\d.]+) Gbit/s", out)
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0, out[-1000:]


def test_demo():
    out = run(".ci/demo", "--no-build")
    assert out.count("Hello from the west side, served by nginx") == 2
    assert "the gateway reset the connection, as the policy says" in out
