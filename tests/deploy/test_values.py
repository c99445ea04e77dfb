"""values.yaml of the chart: every value documented, known to the schema and used by a template."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.deploy

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "mlscale"
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")


def key_paths(values: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every mapping key (not descending into lists)."""
    paths: set[str] = set()
    if isinstance(values, dict):
        for key, value in values.items():
            path = f"{prefix}{key}"
            paths.add(path)
            paths |= key_paths(value, f"{path}.")
    return paths


def documented_keys(text: str) -> dict[str, bool]:
    """Map each key path written in a values file to whether a comment documents it.

    A key counts as documented when the line just above it is a comment, or when the key's
    own line ends with one. Lines inside lists are not keys of the values file.
    """
    found: dict[str, bool] = {}
    stack: list[tuple[int, str]] = []
    previous_is_comment = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            previous_is_comment = False
            continue
        if stripped.startswith("#"):
            previous_is_comment = True
            continue
        match = KEY_LINE.match(line)
        if match is None:  # a list item or a continuation
            previous_is_comment = False
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([*(key for _, key in stack), match["key"]])
        found[path] = previous_is_comment or " #" in line.split(":", 1)[1]
        stack.append((indent, match["key"]))
        previous_is_comment = False
    return found


def test_documented_keys_flags_a_key_without_a_comment() -> None:
    text = "# Image.\nimage:\n  # Repository.\n  repository: x\n  tag: y\n\n# Spaced out.\n\nreplicas: 1\n"
    assert documented_keys(text) == {"image": True, "image.repository": True, "image.tag": False, "replicas": False}


def test_every_value_has_a_comment_above_it() -> None:
    text = (CHART_DIR / "values.yaml").read_text()
    documented = documented_keys(text)
    # The line scan must see exactly the keys YAML sees, or its verdict means nothing.
    assert set(documented) == key_paths(yaml.safe_load(text))
    assert [path for path, ok in documented.items() if not ok] == []


def test_schema_knows_every_value_and_nothing_else() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert set(schema["properties"]) - {"global"} == set(values)
    for key, sub_schema in schema["properties"].items():
        if "properties" in sub_schema:
            assert set(sub_schema["properties"]) == set(values[key]), f"schema of {key} differs from values.yaml"


def test_templates_use_only_values_that_exist_and_every_value_is_used() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    templates = "\n".join(p.read_text() for p in sorted((CHART_DIR / "templates").rglob("*")) if p.is_file())
    referenced = set(re.findall(r"\.Values\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)", templates))
    paths = key_paths(values)
    assert referenced - paths == set(), "templates refer to values missing from values.yaml"
    # A value is used when a template refers to it, to a mapping that holds it (toYaml), or to
    # a value inside it.
    unused = {p for p in paths if not any(p == r or p.startswith(f"{r}.") or r.startswith(f"{p}.") for r in referenced)}
    assert unused == set(), "values.yaml has values no template uses"
