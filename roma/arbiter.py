"""Contention arbiter: several services' replicas asking for more cores than a node has."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlscale.contention import share_capacity


@dataclass(frozen=True)
class ArbitratedAllocation:
    """Outcome of arbitration.

    Attributes:
        cores: Per service, the cores each of its replicas gets (same order as asked).
        contended: True when the requests exceeded the capacity and were scaled down.
        requested_cores: Sum of the requests.
        capacity_cores: The capacity they were fitted into.
    """

    cores: dict[str, list[float]]
    contended: bool
    requested_cores: float
    capacity_cores: float

    def message(self) -> str:
        """One line for the ``Contended`` condition."""
        if not self.contended:
            return f"{self.requested_cores:g} cores requested fit in {self.capacity_cores:g}"
        return (
            f"{self.requested_cores:g} cores requested exceed {self.capacity_cores:g}: "
            f"every request scaled by {self.capacity_cores / self.requested_cores:.2f}"
        )


def arbitrate(
    requests: Mapping[str, Sequence[float]],
    capacity_cores: float,
    floors: Mapping[str, float] | None = None,
) -> ArbitratedAllocation:
    """Fit every service's per-replica requests into ``capacity_cores``.

    Args:
        requests: Per service name, the cores each of its replicas asks for.
        capacity_cores: Cores the node (or machine) can give them all.
        floors: Per service, the least a replica may be cut to (its ``coresMin``).

    Returns:
        The allocation, proportional to the requests when they do not fit.
    """
    flat: dict[str, float] = {}
    flat_floors: dict[str, float] = {}
    for svc, cores in requests.items():
        for i, c in enumerate(cores):
            key = f"{svc}\x00{i}"
            flat[key] = float(c)
            if floors and svc in floors:
                flat_floors[key] = floors[svc]
    granted, contended = share_capacity(flat, capacity_cores, flat_floors or None)
    out: dict[str, list[float]] = {svc: [0.0] * len(c) for svc, c in requests.items()}
    for key, granted_cores in granted.items():
        svc, idx = key.split("\x00")
        out[svc][int(idx)] = granted_cores
    return ArbitratedAllocation(out, contended, sum(flat.values()), capacity_cores)
