from __future__ import annotations

import pytest

from mlscale.contention import share_capacity


def test_requests_within_capacity_are_untouched() -> None:
    alloc, contended = share_capacity({"a": 0.5, "b": 1.0}, 2.0)
    assert alloc == {"a": 0.5, "b": 1.0}
    assert not contended


def test_excess_is_scaled_in_proportion_above_floors() -> None:
    alloc, contended = share_capacity({"a": 2.0, "b": 1.0}, 2.0, floors={"a": 0.5, "b": 0.5})
    assert contended
    assert sum(alloc.values()) == pytest.approx(2.0)
    # above the floors a asked 1.5 and b 0.5: the 1.0 spare core is split 3:1
    assert alloc["a"] == pytest.approx(1.25)
    assert alloc["b"] == pytest.approx(0.75)


def test_floors_are_kept_even_when_they_exceed_capacity() -> None:
    alloc, contended = share_capacity({"a": 1.0, "b": 1.0}, 0.5, floors={"a": 0.4, "b": 0.4})
    assert contended
    assert alloc == {"a": pytest.approx(0.4), "b": pytest.approx(0.4)}
