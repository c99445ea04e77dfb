"""Sharing a node's cores when the regulators together ask for more than it has."""

from __future__ import annotations

from collections.abc import Mapping


def share_capacity(
    requests: Mapping[str, float],
    capacity_cores: float,
    floors: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], bool]:
    """Scale every request down in proportion when their sum exceeds the capacity.

    Each request keeps at least its floor (its ``coresMin``); what is above the floors is
    shared in proportion to what each asked above its floor.

    Args:
        requests: Cores asked for, by name.
        capacity_cores: Cores the node (or machine) can give.
        floors: Fewest cores each may get; defaults to 0.

    Returns:
        The allocation by name and whether the requests were contended (scaled down).
    """
    floors = floors or {}
    total = sum(requests.values())
    if total <= capacity_cores + 1e-9:
        return dict(requests), False
    floor_of = {name: min(floors.get(name, 0.0), asked) for name, asked in requests.items()}
    floor_total = sum(floor_of.values())
    spare = max(0.0, capacity_cores - floor_total)
    above = {name: asked - floor_of[name] for name, asked in requests.items()}
    above_total = sum(above.values())
    if above_total <= 0:
        return dict(floor_of), True
    scale = min(1.0, spare / above_total)
    return {name: floor_of[name] + above[name] * scale for name in requests}, True
