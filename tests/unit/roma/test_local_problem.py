"""`mlscale run` of an InferenceService refuses what cannot run here before it starts a process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlscale.local import LocalRunOptions
from roma.api import InferenceService
from roma.local import TRACE_ANNOTATION, local_problem, run_local

REPO = Path(__file__).resolve().parents[3]


def _svc(model: dict[str, Any], annotations: dict[str, str] | None = None) -> InferenceService:
    return InferenceService.model_validate(
        {
            "apiVersion": "mlscale.dev/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": "cnn", "annotations": annotations or {}},
            "spec": {"model": {"name": "cnn", **model}, "slo": {"latencyMs": 100}},
        }
    )


def _options(tmp_path: Path, load: str | None = None) -> LocalRunOptions:
    return LocalRunOptions(report_dir=tmp_path / "r", load=load, quiet=True)


def test_the_example_model_passes(tmp_path: Path) -> None:
    assert local_problem(_svc({"builder": "examples.roma.models:small_cnn"}), _options(tmp_path), REPO) is None


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"builder": "examples.roma.modles:small_cnn"}, "spec.model.builder: no module 'examples.roma.modles'"),
        ({"builder": "examples.roma.models:tiny_cnn"}, "examples/roma/models.py defines no 'tiny_cnn'"),
        ({"uri": "models/missing"}, "spec.model.uri: models/missing does not exist (a relative path"),
    ],
)
def test_a_model_that_cannot_load_is_named_by_its_field(tmp_path: Path, model: dict[str, Any], expected: str) -> None:
    problem = local_problem(_svc(model), _options(tmp_path), REPO)
    assert problem is not None
    assert expected in problem


def test_a_bad_trace_names_where_it_came_from(tmp_path: Path) -> None:
    model = {"builder": "examples.roma.models:small_cnn"}
    annotated = _svc(model, {TRACE_ANNOTATION: "step:20"})
    problem = local_problem(annotated, _options(tmp_path), REPO)
    assert problem is not None
    assert problem.startswith(f"metadata.annotations[{TRACE_ANNOTATION}]: 'step:20' is not a trace")
    # --load wins over the annotation, and is named when it is the bad one.
    assert local_problem(annotated, _options(tmp_path, load="const:5"), REPO) is None
    problem = local_problem(_svc(model), _options(tmp_path, load="const"), REPO)
    assert problem is not None
    assert problem.startswith("--load: ")


def test_run_refuses_before_it_starts_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    code = run_local(_svc({"uri": "models/missing"}), _options(tmp_path))
    assert code == 2
    assert "cnn: cannot run: spec.model.uri: models/missing does not exist" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
