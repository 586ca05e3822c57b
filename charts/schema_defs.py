#!/usr/bin/python3
"""The Kubernetes types the chart's values pass through (resources, tolerations, affinity,
imagePullSecrets), as strict draft-07 JSON Schema derived from the official OpenAPI v2 spec.

    charts/schema_defs.py [kubernetes-openapi-v2.json[.gz]]

rewrites the "definitions" of charts/clusterlink/values.schema.json (the rest of the file is
hand-written and left alone). tests/system/test_helm_chart.py derives them again from the spec
and fails if the committed ones differ. The spec defaults to tests/support/k8s's copy.

Conversion: descriptions and x-kubernetes-* extensions dropped; every object with properties
gets additionalProperties: false (unknown keys are errors, as in the rest of the schema);
formats dropped (helm's validator does not know int32/int64); Quantity becomes a string
matching the Kubernetes quantity grammar or a number (YAML `cpu: 1`).
"""
import gzip
import json
import os
import sys

ROOTS = [
    "io.k8s.api.core.v1.ResourceRequirements",
    "io.k8s.api.core.v1.Toleration",
    "io.k8s.api.core.v1.Affinity",
    "io.k8s.api.core.v1.LocalObjectReference",
]
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
QUANTITY_SCHEMA = {
    "oneOf": [
        {
            "type": "string",
            "pattern": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$",
        },
        {"type": "number"},
    ]
}
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "clusterlink", "values.schema.json")
SPEC = os.path.join(HERE, "..", "tests", "support", "k8s", "kubernetes-openapi-v2.json.gz")


def _convert(node, spec_defs, out):
    if isinstance(node, list):
        return [_convert(v, spec_defs, out) for v in node]
    if not isinstance(node, dict):
        return node
    res = {}
    for k, v in node.items():
        if k == "description" or k == "format" or k.startswith("x-kubernetes-"):
            continue
        if k == "$ref":
            name = v.rsplit("/", 1)[1]
            _define(name, spec_defs, out)
            res[k] = "#/definitions/" + name
        elif k == "properties":
            res[k] = {p: _convert(s, spec_defs, out) for p, s in v.items()}
        else:
            res[k] = _convert(v, spec_defs, out)
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        res["additionalProperties"] = False
    if node.get("format") == "int-or-string":
        res.pop("type", None)
        res["type"] = ["integer", "string"]
    return res


def _define(name, spec_defs, out):
    if name in out:
        return
    if name == QUANTITY:
        out[name] = QUANTITY_SCHEMA
        return
    out[name] = None  # placeholder: cycles
    out[name] = _convert(spec_defs[name], spec_defs, out)


def definitions(spec):
    """The strict definitions for ROOTS and everything they reference, sorted by name."""
    out = {}
    for r in ROOTS:
        _define(r, spec["definitions"], out)
    return {k: out[k] for k in sorted(out)}


def main(argv):
    if len(argv) > 2:
        sys.stderr.write("usage: %s [kubernetes-openapi-v2.json[.gz]]\n" % argv[0])
        return 2
    path = argv[1] if len(argv) == 2 else SPEC
    with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
        spec = json.load(f)
    with open(SCHEMA) as f:
        schema = json.load(f)
    schema["definitions"] = definitions(spec)
    with open(SCHEMA, "w") as f:
        json.dump(schema, f, indent=2)
        f.write("\n")
    print("%s: %d definitions" % (SCHEMA, len(schema["definitions"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
