"""The control loop: sensor → law → actuator, once per period.

:func:`control_period` is the one step both ``mlscale run`` and the operator perform;
:func:`run_control_loop` repeats it on a clock until the application ends (clock and sleep
are injected, so tests drive it with the simulated plant and no real time passes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dynaspark.law import DeadlineControlLaw, Decision, LawState
from dynaspark.observation import ExecutorCpu, ProgressObservation
from dynaspark.ports import CoresActuator, CpuUsageMeter, ProgressSensor
from dynaspark.profiler import ProfileRecorder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControlSample:
    """One period, as recorded in the report.

    Attributes:
        t_s: Seconds since the application started.
        stage_id: The stage regulated (``None`` between stages).
        set_point: The stage's set point.
        progress: Fraction of the running stage done.
        app_progress: Estimated fraction of the application done.
        cores: Cores applied per executor.
        requested_cores: Cores the regulators asked for (before contention sharing).
        predicted_completion_s: Earliest completion at coresMax, seconds since the start.
        at_risk: Whether the deadline was at risk.
        contended: Whether requests exceeded the capacity.
        used_cores: Cores each executor really used over the period before (where measured).
        throttled_share: For each executor metered, the share of the CFS periods in which it
            ran out of quota over the period before (how often it wanted more than it had).
        usage_ceilings: Executors capped at what they used plus headroom, with the cap.
    """

    t_s: float
    stage_id: int | None
    set_point: float | None
    progress: float | None
    app_progress: float
    cores: dict[str, float]
    requested_cores: dict[str, float]
    predicted_completion_s: float | None
    at_risk: bool
    contended: bool
    used_cores: dict[str, float] = field(default_factory=dict)
    throttled_share: dict[str, float] = field(default_factory=dict)
    usage_ceilings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        decision: Decision,
        applied: Mapping[str, float],
        now_s: float,
        start_s: float,
        cpu: Mapping[str, ExecutorCpu] | None = None,
    ) -> ControlSample:
        """Build the sample of one period (``cpu``: what the executors used over the period before)."""
        predicted = decision.predicted_completion_s
        return cls(
            t_s=now_s - start_s,
            stage_id=decision.stage_id,
            set_point=decision.set_point,
            progress=decision.stage_progress,
            app_progress=decision.app_progress,
            cores=dict(applied),
            requested_cores=dict(decision.requested_cores),
            predicted_completion_s=None if predicted is None else predicted - start_s,
            at_risk=decision.at_risk,
            contended=decision.contended,
            used_cores={e: c.used_cores for e, c in (cpu or {}).items()},
            throttled_share={e: c.throttled_share for e, c in (cpu or {}).items() if c.throttled_share is not None},
            usage_ceilings=dict(decision.usage_ceilings),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the sample as a plain dict (report JSON)."""
        return {
            "t": round(self.t_s, 3),
            "stage": self.stage_id,
            "set_point": None if self.set_point is None else round(self.set_point, 4),
            "progress": None if self.progress is None else round(self.progress, 4),
            "app_progress": round(self.app_progress, 4),
            "cores": dict(sorted(self.cores.items())),
            "requested_cores": dict(sorted(self.requested_cores.items())),
            "predicted_completion_s": None
            if self.predicted_completion_s is None
            else round(self.predicted_completion_s, 2),
            "at_risk": self.at_risk,
            "contended": self.contended,
            "used_cores": {e: round(c, 3) for e, c in sorted(self.used_cores.items())},
            "throttled_share": {e: round(c, 3) for e, c in sorted(self.throttled_share.items())},
            "usage_ceilings": dict(sorted(self.usage_ceilings.items())),
        }


def control_period(
    law: DeadlineControlLaw,
    state: LawState,
    sensor: ProgressSensor,
    actuator: CoresActuator,
    now_s: float,
    *,
    cpu: Mapping[str, ExecutorCpu] | None = None,
) -> tuple[LawState, Decision, ProgressObservation, Mapping[str, float]]:
    """Run one period: read progress, decide, apply.

    Args:
        law: The control law.
        state: Its state after the previous period.
        sensor: Where progress comes from.
        actuator: Where cores go.
        now_s: Now (seconds since the epoch).
        cpu: What each executor used over the period that ends now, where metered.

    Returns:
        The next state, the decision, the observation it was made on, and the cores applied.
    """
    obs = sensor.read()
    if cpu:
        obs = replace(obs, cpu=dict(cpu))
    state, decision = law.step(state, obs, now_s)
    applied = actuator.apply(decision.cores)
    log.debug(
        "stage=%s sp=%s progress=%s cores=%s requested=%s at_risk=%s",
        decision.stage_id,
        decision.set_point,
        decision.stage_progress,
        decision.cores,
        decision.requested_cores,
        decision.at_risk,
    )
    return state, decision, obs, applied


def run_control_loop(
    law: DeadlineControlLaw,
    state: LawState,
    sensor: ProgressSensor,
    actuator: CoresActuator,
    *,
    finished: Callable[[], bool],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    recorder: ProfileRecorder | None = None,
    on_sample: Callable[[ControlSample, Decision], None] | None = None,
    max_s: float = 24 * 3600.0,
    meter: CpuUsageMeter | None = None,
) -> tuple[LawState, list[ControlSample]]:
    """Repeat :func:`control_period` every ``law.config.period_s`` until ``finished()``.

    Args:
        law: The control law.
        state: Its initial (or resumed) state.
        sensor: Where progress comes from.
        actuator: Where cores go.
        finished: Says when the application has ended.
        clock: Seconds since the epoch.
        sleep: Waits that many seconds.
        recorder: Fed every observation, to build the stage profile.
        on_sample: Called after every period (progress line, status update).
        max_s: Stop after this long even if the application has not ended.
        meter: Measures the cores each executor used and whether it was throttled (the law's
            usage ceiling; reported next to what it was given).

    Returns:
        The last state and every sample.
    """
    period_s = law.config.period_s
    samples: list[ControlSample] = []
    applied: Mapping[str, float] = {}
    next_s = clock()
    while not finished() and clock() - state.start_s < max_s:
        now_s = clock()
        # The cores of the period that ends now, an executor capped at its use counted as
        # uncapped: the profile must not take the cap for a speed-up.
        previous_total = state.paced_cores(applied)
        # What each executor used over the period that ends now: the law caps an executor
        # that was not throttled near what it used.
        used = meter.usage() if meter is not None else {}
        state, decision, obs, applied = control_period(law, state, sensor, actuator, now_s, cpu=used)
        if recorder is not None:
            recorder.record(now_s, obs, previous_total)
        sample = ControlSample.of(decision, applied, now_s, state.start_s, used)
        samples.append(sample)
        if on_sample is not None:
            on_sample(sample, decision)
        next_s += period_s
        delay_s = next_s - clock()
        if delay_s > 0:
            sleep(delay_s)
        else:
            next_s = clock()  # fell behind (a slow REST call): do not try to catch up in a burst
    return state, samples
