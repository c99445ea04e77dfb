"""Contention arbiter across services on one machine."""

from __future__ import annotations

import pytest

from roma.arbiter import arbitrate


def test_fits_untouched() -> None:
    out = arbitrate({"a": [1.0], "b": [0.5, 0.5]}, 4.0)
    assert not out.contended
    assert out.cores == {"a": [1.0], "b": [0.5, 0.5]}


def test_over_capacity_scales_in_proportion_and_keeps_floors() -> None:
    out = arbitrate({"a": [2.0, 2.0], "b": [2.0]}, 3.0, floors={"a": 0.2, "b": 0.2})
    assert out.contended
    total = sum(sum(v) for v in out.cores.values())
    assert total == pytest.approx(3.0)
    assert out.cores["a"][0] == pytest.approx(out.cores["b"][0])
    assert all(c >= 0.2 for v in out.cores.values() for c in v)
    assert "exceed" in out.message()
