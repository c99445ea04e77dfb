"""The README's CRD reference says what the API server checks of each spec field, not only its type."""

from __future__ import annotations

from mlscale.reference import markdown


def _row(path: str, kind_heading: str) -> str:
    section = markdown().split(f"#### {kind_heading}", 1)[1].split("#### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith(f"| `{path}` |")]
    assert len(rows) == 1, path
    return rows[0]


def test_numeric_bounds_are_given_with_their_strictness() -> None:
    assert "Allowed: from 1 to 1000." in _row("spec.executors.instances", "DeadlineJob")
    assert "Allowed: > 0 and ≤ 1." in _row("spec.control.alpha", "DeadlineJob")
    assert "Allowed: ≥ 0 and < 1." in _row("spec.gpu.alpha", "InferenceService")
    assert "Allowed: > 0 and ≤ 600000." in _row("spec.slo.latencyMs", "InferenceService")


def test_string_limits_and_cross_field_rules_are_given() -> None:
    name = _row("spec.model.name", "InferenceService")
    assert "at most 63 characters and matching `^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$`" in name
    assert "Allowed: not empty." in _row("spec.application.mainApplicationFile", "DeadlineJob")
    epochs = _row("spec.training.localEpochs", "FederatedTraining")
    assert "Checked: localEpochs.min must not exceed localEpochs.max." in epochs


def test_a_field_without_limits_and_the_status_say_nothing_of_them() -> None:
    assert "Allowed" not in _row("spec.application.mainClass", "DeadlineJob")
    assert "Allowed" not in _row("status.progress", "DeadlineJob")
