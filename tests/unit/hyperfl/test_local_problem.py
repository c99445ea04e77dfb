"""`mlscale run` of a FederatedTraining refuses a builder it cannot find before training starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hyperfl.api import FederatedTraining
from hyperfl.local import run_local
from mlscale.local import LocalRunOptions

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "federatedtraining-digits-iid.yaml"


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        ("examples.hyperfl.nope:digits_mlp", "spec.model.builder: no module 'examples.hyperfl.nope'"),
        ("examples.hyperfl.models:digits_mpl", "examples/hyperfl/models.py defines no 'digits_mpl'"),
    ],
)
def test_a_builder_that_cannot_be_found_stops_the_run_before_it_starts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    builder: str,
    expected: str,
) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["spec"]["model"]["builder"] = builder
    monkeypatch.chdir(tmp_path)
    job = FederatedTraining.model_validate(document)
    code = run_local(job, LocalRunOptions(report_dir=tmp_path / "r", source=EXAMPLE))
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("digits-iid: cannot run: spec.model.builder: ")
    assert expected in err
    # No report of a training that never started ("Failed after 0 rounds, accuracy nan").
    assert not (tmp_path / "r").exists()
