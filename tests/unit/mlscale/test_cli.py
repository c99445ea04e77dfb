"""The mlscale command line as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.mlscale.crdschema import ROOT

BAD = """\
apiVersion: mlscale.dev/v1alpha1
kind: DeadlineJob
metadata: {name: bad}
spec:
  deadline: soon
  application: {mainApplicationFile: app.py}
  executors: {coresMin: "2", coresMax: "1", cores: 3}
---
apiVersion: mlscale.dev/v1alpha1
kind: InferenceService
metadata: {name: also-bad}
spec:
  model: {name: m, builder: "a:b"}
  slo: {latencyMs: 10, percentile: 100}
"""

GOOD = """\
apiVersion: mlscale.dev/v1alpha1
kind: DeadlineJob
metadata: {name: good}
spec:
  deadline: 10m
  application: {mainApplicationFile: app.py}
  executors: {instances: 2, coresMin: 250m, coresMax: "1"}
"""


def mlscale(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlscale", *args], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )


def test_validate_accepts_valid_files(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = mlscale("validate", str(good))
    assert result.returncode == 0, result.stderr
    assert "DeadlineJob/good: valid" in result.stdout


def test_validate_reports_one_line_per_error_with_field_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = mlscale("validate", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert f"{bad}: document 1: DeadlineJob/bad: spec.deadline: 'soon' is not a duration" in lines[0]
    assert any("spec.executors.cores: unknown field" in line for line in lines)
    assert any(
        "InferenceService/also-bad: spec.slo.percentile: Input should be less than 100" in line for line in lines
    )
    assert len(lines) == 3


def test_validate_refuses_foreign_kinds(tmp_path: Path) -> None:
    other = tmp_path / "pod.yaml"
    other.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    result = mlscale("validate", str(other))
    assert result.returncode == 1
    assert "apiVersion: expected 'mlscale.dev/v1alpha1'" in result.stderr


def test_validate_reports_unreadable_yaml(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    result = mlscale("validate", str(broken))
    assert result.returncode == 1
    assert "not valid YAML" in result.stderr


def test_validate_names_the_line_of_a_yaml_error_and_goes_on_to_the_next_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = mlscale("validate", str(broken), str(good))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{broken}: line 2, column 1: not valid YAML:")
    assert "DeadlineJob/good: valid" in result.stdout


def test_a_repeated_key_is_refused_not_silently_dropped(tmp_path: Path) -> None:
    # PyYAML alone keeps the last 'spec': the first block, with its deadline, would be lost.
    twice = tmp_path / "twice.yaml"
    twice.write_text(GOOD + "spec:\n  application: {mainApplicationFile: other.py}\n")
    result = mlscale("validate", str(twice))
    assert result.returncode == 1
    expected = f"{twice}: line 8, column 1: not valid YAML: duplicate key 'spec' (first at line 4): keep one"
    assert expected in result.stderr


def test_a_file_that_is_not_utf8_is_named_and_the_next_file_still_checked(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(GOOD.replace("name: good", "name: g\xe9").encode("latin-1"))
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = mlscale("validate", str(latin), str(good))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{latin}: not UTF-8 text (byte 0xe9 on line 3): save the file as UTF-8" in result.stderr
    assert "DeadlineJob/good: valid" in result.stdout


def test_yaml_merge_keys_and_anchors_still_read(tmp_path: Path) -> None:
    # A merged mapping's keys may be overridden by the mapping's own: that is no repeated key.
    merged = tmp_path / "merged.yaml"
    merged.write_text(
        GOOD.replace('  executors: {instances: 2, coresMin: 250m, coresMax: "1"}\n', "")
        + '  executors:\n    <<: &sizes {instances: 2, coresMin: 250m, coresMax: "1"}\n    instances: 3\n'
    )
    result = mlscale("explain", str(merged))
    assert result.returncode == 0, result.stderr
    assert "spec.executors.instances = 3" in result.stdout


def test_an_unhashable_key_is_a_yaml_error(tmp_path: Path) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text(GOOD + "  ? [a, b]\n  : 1\n")
    result = mlscale("validate", str(odd))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "not valid YAML: while constructing a mapping; found unhashable key" in result.stderr


def test_one_name_in_two_namespaces_is_two_resources(tmp_path: Path) -> None:
    both = tmp_path / "both.yaml"
    team = GOOD.replace("metadata: {name: good}", "metadata: {name: good, namespace: team-a}")
    both.write_text(team + "---\n" + team.replace("team-a", "team-b"))
    result = mlscale("validate", str(both))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("DeadlineJob/good: valid") == 2


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n---\n"])
def test_a_file_without_a_resource_is_an_error(tmp_path: Path, text: str) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    for command in ("validate", "explain", "run"):
        result = mlscale(command, str(empty))
        assert result.returncode != 0, command
        assert f"{empty}: no resource found: the file is empty or holds only comments" in result.stderr


def test_each_document_is_reported_by_its_number(tmp_path: Path) -> None:
    many = tmp_path / "many.yaml"
    bad = GOOD.replace("name: good", "name: second").replace("deadline: 10m", "deadline: soon")
    many.write_text("\n---\n".join([GOOD, bad, GOOD, GOOD.replace("kind: DeadlineJob\n", "")]))
    result = mlscale("validate", str(many))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{many}: DeadlineJob/good: valid"]
    assert result.stderr.splitlines() == [
        f"{many}: document 2: DeadlineJob/second: spec.deadline: 'soon' is not a duration: use a number with a unit, "
        "e.g. '90s', '5m', '1h30m', '250ms'",
        f"{many}: document 3: DeadlineJob/good: metadata.name: document 1 is a DeadlineJob of the same name, and "
        "applied, the second would replace the first: rename one",
        f"{many}: document 4: kind: missing: set it to one of DeadlineJob, FederatedTraining, InferenceService",
    ]
    explained = mlscale("explain", str(many))
    assert explained.returncode == 1
    assert "DeadlineJob/good (engine dynaspark)" in explained.stdout


def test_explain_lists_fields_with_their_meaning(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = mlscale("explain", str(good))
    assert result.returncode == 0, result.stderr
    assert "spec.deadline = 10m (600 s)" in result.stdout
    assert "spec.executors.coresMin = 250m (0.25 cores)" in result.stdout
    assert "Fewest cores an executor is given" in result.stdout


def test_crds_check_passes_on_the_committed_tree() -> None:
    result = mlscale("crds", "--check")
    assert result.returncode == 0, result.stderr


def test_crds_check_fails_on_drift(tmp_path: Path) -> None:
    result = mlscale("crds", "--root", str(tmp_path))
    assert result.returncode == 0
    crd = tmp_path / "crds" / "mlscale.dev_deadlinejobs.yaml"
    crd.write_text(crd.read_text().replace("shortNames", "shortnames"))
    result = mlscale("crds", "--check", "--root", str(tmp_path))
    assert result.returncode == 1
    assert "mlscale.dev_deadlinejobs.yaml: differs from the models" in result.stderr


@pytest.mark.parametrize("command", ["run", "validate", "explain", "crds", "operator", "load"])
def test_help_lists_every_command(command: str) -> None:
    assert command in mlscale("--help").stdout
