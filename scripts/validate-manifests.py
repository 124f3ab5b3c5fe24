#!/usr/bin/env python3
"""Offline validation of rendered Kubernetes manifests (no API server needed).

Usage: validate-manifests.py --crd crds/mqttbroker.yaml -k 1.29.0 -k 1.32.0 FILE...

Every object must validate: built-in kinds strictly (unknown fields are errors) against the
Kubernetes API's JSON schemas of each version given (package kubernetes-validate), MqttBroker
objects strictly against the openAPIV3Schema of the CRD (CEL rules are left to the CRD tests). A kind with no schema is an error, as is a file
with no object at all. Prints one line per object; exits 1 on the first file with an error.
"""
import argparse
import sys

import jsonschema
import kubernetes_validate
import yaml


def strict(schema):
    """Unknown fields are errors, as the API server's field validation makes them (the Kubernetes
    schema leaves additionalProperties open on objects with properties)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and schema.get("x-kubernetes-preserve-unknown-fields") is not True):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


def crd_validators(crd_path):
    """{(apiVersion, kind): validator} for every served version of the CRDs in crd_path."""
    out = {}
    with open(crd_path) as f:
        for crd in yaml.safe_load_all(f):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                schema = strict(v["schema"]["openAPIV3Schema"])
                # The API server checks these itself; the generated schema may not list them.
                for field, sub in (("apiVersion", {"type": "string"}), ("kind", {"type": "string"}),
                                   ("metadata", {"type": "object"})):
                    schema.setdefault("properties", {}).setdefault(field, sub)
                out[(f"{group}/{v['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--crd", action="append", default=[], help="CRD file(s) for custom resources")
    p.add_argument("-k", "--kubernetes-version", action="append", required=True)
    p.add_argument("files", nargs="+")
    a = p.parse_args()
    custom = {}
    for c in a.crd:
        custom.update(crd_validators(c))
    failed = False
    for path in a.files:
        with open(sys.stdin.fileno() if path == "-" else path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        if not docs:
            print(f"FAIL {path}: no Kubernetes object", file=sys.stderr)
            failed = True
            continue
        for d in docs:
            name = f"{path}: {d.get('kind')}/{d.get('metadata', {}).get('name')}"
            key = (d.get("apiVersion"), d.get("kind"))
            try:
                if key in custom:
                    errors = sorted(custom[key].iter_errors(d), key=lambda e: list(e.path))
                    if errors:
                        e = errors[0]
                        raise ValueError(f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}")
                    print(f"ok   {name} (CRD schema, strict)")
                else:
                    for k in a.kubernetes_version:
                        kubernetes_validate.validate(d, k, strict=True)
                    print(f"ok   {name} (Kubernetes {', '.join(a.kubernetes_version)}, strict)")
            except kubernetes_validate.ValidationError as e:
                print(f"FAIL {name}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}", file=sys.stderr)
                failed = True
            except Exception as e:  # SchemaNotFoundError, ValueError above, ...
                print(f"FAIL {name}: {e}", file=sys.stderr)
                failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
