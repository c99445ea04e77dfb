"""One control period of an InferenceService: sensor → policy → (arbiter) → actuator.

The same function runs under ``mlscale run`` (local processes in cgroups) and in the
operator (pods), with the adapters of each place behind the ports of :mod:`roma.ports`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from roma.arbiter import arbitrate
from roma.law import Allocation
from roma.policies import AllocationPolicy, MlscalePolicy
from roma.ports import LatencyObservation, LatencySensor, ReplicaActuator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodOutcome:
    """What one period saw and did.

    Attributes:
        observation: The sensor's reading.
        requested: What the policy asked for.
        cores: What was applied, per replica name.
        contended: True when the arbiter had to cut the request.
        contention_message: The arbiter's one-line account.
    """

    observation: LatencyObservation
    requested: Allocation
    cores: dict[str, float]
    contended: bool
    contention_message: str


async def control_period(
    sensor: LatencySensor,
    actuator: ReplicaActuator,
    policy: AllocationPolicy,
    service: str,
    *,
    capacity_cores: float | None = None,
    floor_cores: float = 0.0,
    other_services: Mapping[str, list[float]] | None = None,
) -> PeriodOutcome:
    """Run one period.

    Args:
        sensor: Latency sensor of the service.
        actuator: Replica actuator of the service.
        policy: Decides the allocation (the mlscale law, or a baseline).
        service: Service name (for the arbiter and the log line).
        capacity_cores: Cores of the node/machine shared with ``other_services`` (None: no cap).
        floor_cores: Least a replica may be cut to (``coresMin``).
        other_services: Current per-replica cores of the other services on the same node.

    Returns:
        The outcome, for status, reports and logs.
    """
    obs = await sensor.observe()
    names = await actuator.replicas()
    # Per-replica figures in the actuator's order, so the law's regulators line up.
    ordered = {n: obs.replica_latency_s.get(n) for n in names}
    obs = dataclasses.replace(obs, replica_latency_s=ordered)
    utilisation = await actuator.cpu_utilisation()
    requested = policy.decide(obs, [utilisation[n] for n in names if n in utilisation])
    cores = list(requested.cores)
    contended, message = False, ""
    if capacity_cores is not None:
        asks = {**(other_services or {}), service: cores}
        floors = {name: floor_cores for name in asks}
        result = arbitrate(asks, capacity_cores, floors)
        cores, contended, message = result.cores[service], result.contended, result.message()
        if contended and isinstance(policy, MlscalePolicy):
            policy.law.impose(cores)
    names = await actuator.set_replicas(len(cores))
    applied = dict(zip(names, cores, strict=False))
    await actuator.set_cores(applied)
    log.info(
        "service=%s t=%.1fs rps=%.1f latency_ms=%s replicas=%d cores=%s contended=%s",
        service,
        obs.t_s,
        obs.requests_per_second,
        "-" if obs.latency_s is None else f"{obs.latency_s * 1000:.1f}",
        len(names),
        [round(c, 2) for c in cores],
        contended,
    )
    return PeriodOutcome(obs, requested, applied, contended, message)
