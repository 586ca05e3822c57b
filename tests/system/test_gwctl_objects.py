"""gwctl against a real gateway: every object type's lifecycle and the error cases."""
import json

import pytest

import clharness as h

OBJECTS = {
    # loopback addresses with nothing listening: the health probes never leave the machine
    "peer": (["--name", "west", "--host", "127.0.0.2", "--port", "9"],
             ["--name", "west", "--host", "127.0.0.3", "--port", "9", "--host", "127.0.0.4",
              "--port", "9"],
             lambda o: [g["host"] for g in o["spec"]["gateways"]]),
    "export": (["--name", "web", "--host", "127.0.0.1", "--port", "80"],
               ["--name", "web", "--host", "127.0.0.1", "--port", "8080"],
               lambda o: o["spec"]["port"]),
    "import": (["--name", "web", "--port", "7070", "--peer", "west"],
               ["--name", "web", "--port", "7071", "--peer", "west", "--peer", "north",
                "--lb", "static"],
               lambda o: (o["spec"]["port"], o["spec"]["lbScheme"], len(o["spec"]["sources"]))),
}


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_lifecycle(gateways, kind):
    g = gateways("gw-a")
    create, update, view = OBJECTS[kind]
    assert g.ctl_json("get", kind) == []
    for verb in (["get", kind, "--name", "web" if kind != "peer" else "west"],
                 ["delete", kind, "--name", "web" if kind != "peer" else "west"],
                 ["update", kind] + create):
        p = g.ctl(*verb, check=False)
        assert p.returncode != 0
        assert "not found" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    g.ctl("create", kind, *create)
    p = g.ctl("create", kind, *create, check=False)
    assert p.returncode != 0 and "already exists" in p.stderr
    name = create[1]
    one = g.ctl_json("get", kind, "--name", name)
    assert one["metadata"]["name"] == name
    # a peer's status is live (health probes run between the two reads): compare the rest
    def settled(o):
        return {k: v for k, v in o.items() if k != "status"}
    assert [settled(o) for o in g.ctl_json("get", kind)] == [settled(one)]
    before = view(one)
    g.ctl("update", kind, *update)
    after = view(g.ctl_json("get", kind, "--name", name))
    assert after != before
    table = g.ctl("get", kind).stdout
    assert name in table and "NAME" in table
    g.ctl("delete", kind, "--name", name)
    assert g.ctl_json("get", kind) == []


def test_policy_lifecycle_yaml_and_bad_files(gateways, workdir):
    g = gateways("gw-a")
    yaml = ("kind: AccessPolicy\nmetadata:\n  name: allow-west\nspec:\n  action: allow\n"
            "  from:\n    - workloadSelector:\n        matchLabels:\n"
            "          peer.clusterlink.net/name: west\n  to:\n    - workloadSelector: {}\n")
    g.ctl("create", "policy", "--file", "-", input=yaml)
    got = g.ctl_json("get", "policy", "--name", "allow-west")
    assert got["spec"]["from"][0]["workloadSelector"]["matchLabels"] == {
        "peer.clusterlink.net/name": "west"}
    p = g.ctl("create", "policy", "--file", "-", input=yaml, check=False)
    assert p.returncode != 0 and "already exists" in p.stderr
    bad = json.dumps({"kind": "AccessPolicy", "metadata": {"name": "x"},
                      "spec": {"action": "allow", "from": [{"workloadSelector": {
                          "matchExpressions": [{"key": "k", "operator": "Like"}]}}]}})
    p = g.ctl("create", "policy", "--file", "-", input=bad, check=False)
    assert p.returncode != 0
    assert "spec.from[0].workloadSelector.matchExpressions[0].operator" in p.stderr
    p = g.ctl("create", "policy", "--file", workdir + "/missing.yaml", check=False)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1
    g.ctl("update", "policy", "--file", "-", input=yaml.replace("action: allow", "action: deny"))
    assert g.ctl_json("get", "policy", "--name", "allow-west")["spec"]["action"] == "deny"
    assert "deny" in g.ctl("get", "policy").stdout
    g.ctl("delete", "policy", "--name", "allow-west")
    assert g.ctl_json("get", "policy") == []
    p = g.ctl("delete", "policy", "--name", "allow-west", check=False)
    assert p.returncode != 0 and "not found" in p.stderr


def test_status_and_get_all(gateways):
    g = gateways("gw-a")
    g.ctl("create", "peer", "--name", "west", "--host", "127.0.0.1", "--port", "1")
    st = g.ctl_json("status")
    assert st["name"] == "gw-a"
    assert st["peers"][0]["name"] == "west"
    assert len(st["workers"]) == 1
    assert "west" in g.ctl("status").stdout
    allj = g.ctl_json("get", "all")
    assert "west" in json.dumps(allj)


def test_wrong_admin_certificate_is_refused(gateways, fabric):
    a, b = gateways("gw-a", "gw-b")
    # b's admin certificate is valid in the fabric but not an admin of a
    env = b.env()
    p = h.run([h.GWCTL, "--context", "gw-b", "get", "peer"], env=env, check=True)
    assert p.returncode == 0
    h.run([h.GWCTL, "init", "--id", "gw-a", "--host", "127.0.0.1", "--port", str(a.port),
           "--ca", fabric.ca, "--cert", b.certdir + "/gwctl/cert.pem",
           "--key", b.certdir + "/gwctl/key.pem"], env=env)
    p = h.run([h.GWCTL, "--context", "gw-a", "get", "peer"], env=env, check=False)
    assert p.returncode != 0
    assert "may not use the management API" in p.stderr
