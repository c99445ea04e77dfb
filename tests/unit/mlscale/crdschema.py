"""Validate a resource against its CRD's openAPIV3Schema, as the API server would (strict fields)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[3]


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    if schema.get("type") == "object" and "properties" in schema:
        schema["additionalProperties"] = False
    for sub in schema.get("properties", {}).values():
        sub.update(_strict(sub))
    if "items" in schema:
        schema["items"] = _strict(schema["items"])
    return schema


def crd_schema(kind: str) -> dict[str, Any]:
    for path in (ROOT / "crds").glob("mlscale.dev_*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return _strict(root)
    raise LookupError(kind)


def schema_errors(document: dict[str, Any]) -> list[str]:
    """Every violation of the CRD schema, each with its field path."""
    validator = jsonschema.Draft4Validator(crd_schema(document["kind"]))
    return [".".join(str(p) for p in err.absolute_path) + ": " + err.message for err in validator.iter_errors(document)]
