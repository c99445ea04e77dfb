"""Self-profiling: a run records the stage profile that later runs plan with.

The recorder is fed every observation together with the cores allocated since the previous
one; at the end it turns stage times into durations at nominal cores
(``measured × mean allocated cores / nominal cores``, i.e. the same work on all cores) and
keeps the idle times between stages, which cores do not shorten. Time during which a stage
was submitted but no executor had cores yet (the executors were still starting) is idle time
too: it counts before the stage, not in its work. Pure: time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dynaspark.observation import ProgressObservation, StageObservation
from dynaspark.profile import ApplicationProfile, StageProfile


@dataclass
class ProfileRecorder:
    """Accumulates what a run shows about its stages.

    Attributes:
        start_s: When the application started (seconds).
        nominal_cores: Total executor cores the profile is normalised to (instances × coresMax).
        source: Free text naming the application and its arguments.
    """

    start_s: float
    nominal_cores: float
    source: str = ""
    _stages: dict[int, StageObservation] = field(default_factory=dict, init=False)
    _core_seconds: dict[int, float] = field(default_factory=dict, init=False)
    _active_seconds: dict[int, float] = field(default_factory=dict, init=False)
    _waiting_seconds: dict[int, float] = field(default_factory=dict, init=False)
    _last_s: float | None = field(default=None, init=False)
    _last_active: tuple[int, ...] = field(default=(), init=False)

    def record(self, now_s: float, obs: ProgressObservation, total_cores: float) -> None:
        """Take one observation.

        Args:
            now_s: Now (seconds).
            obs: The application's progress now.
            total_cores: Cores allocated to all executors since the previous observation.
        """
        if self._last_s is not None and self._last_active:
            dt_s = max(0.0, now_s - self._last_s)
            share = total_cores * dt_s / len(self._last_active)
            for sid in self._last_active:
                if total_cores <= 0.0:
                    self._waiting_seconds[sid] = self._waiting_seconds.get(sid, 0.0) + dt_s
                    continue
                self._core_seconds[sid] = self._core_seconds.get(sid, 0.0) + share
                self._active_seconds[sid] = self._active_seconds.get(sid, 0.0) + dt_s
        for stage in obs.stages:
            if stage.status != "PENDING":
                self._stages[stage.stage_id] = stage
        self._last_s = now_s
        self._last_active = tuple(s.stage_id for s in obs.active_stages)

    @property
    def stages_seen(self) -> int:
        """How many stages have run (or are running)."""
        return sum(1 for s in self._stages.values() if s.status in ("ACTIVE", "COMPLETE"))

    def profile(self, end_s: float) -> ApplicationProfile | None:
        """Build the profile of the run that ended at ``end_s``; ``None`` when no stage ran.

        Stages still active in the last observation are taken to have ended at ``end_s``
        (the driver can exit between two observations).
        """
        ran = sorted(
            (
                s
                for s in self._stages.values()
                if s.status in ("ACTIVE", "COMPLETE") and s.submission_time_s is not None
            ),
            key=lambda s: s.stage_id,
        )
        if not ran:
            return None
        result = []
        previous_end_s = self.start_s
        for stage in ran:
            assert stage.submission_time_s is not None
            submitted_s = stage.submission_time_s
            completed_s = stage.completion_time_s if stage.completion_time_s is not None else end_s
            waiting_s = min(max(0.0, completed_s - submitted_s), self._waiting_seconds.get(stage.stage_id, 0.0))
            measured_s = max(0.0, completed_s - submitted_s - waiting_s)
            active_s = self._active_seconds.get(stage.stage_id, 0.0)
            mean_cores = self._core_seconds.get(stage.stage_id, 0.0) / active_s if active_s > 0 else self.nominal_cores
            result.append(
                StageProfile(
                    stage_id=stage.stage_id,
                    name=stage.name,
                    tasks=stage.num_tasks,
                    input_records=stage.input_records,
                    duration_s=measured_s * min(1.0, mean_cores / self.nominal_cores),
                    idle_before_s=max(0.0, submitted_s - previous_end_s) + waiting_s,
                )
            )
            previous_end_s = max(previous_end_s, completed_s)
        return ApplicationProfile(
            nominal_cores=self.nominal_cores,
            stages=tuple(result),
            tail_s=max(0.0, end_s - previous_end_s),
            source=self.source,
        )
