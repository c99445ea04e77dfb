"""Self-profiling: a run records the stage profile that later runs plan with.

The recorder is fed every observation together with the cores allocated since the previous
one; at the end it turns stage times into durations at nominal cores
(``measured × mean allocated cores / nominal cores``, i.e. the same work on all cores) and
keeps the idle times between stages, which cores do not shorten. Time during which a stage
was submitted but no executor had cores yet (the executors were still starting) is idle time
too: it counts before the stage, not in its work.

Within a stage, only the time its tasks ran scales with the cores: the busiest executor's
task run time (Spark's ``executorRunTime``) over its slots. The rest of the stage's wall time —
task launches, results travelling back, the round trips of a short stage — is recorded as the
stage's latency, which later plans do not stretch.

Each stage also gets its progress curve: the share of its tasks done at each tenth of its
duration, from its tasks' finish times where the source gives them all (the event log), else
from the tasks done in the samples taken while it ran. Pure: time is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dynaspark.observation import ProgressObservation, StageObservation
from dynaspark.profile import PROGRESS_CURVE_POINTS, ApplicationProfile, StageProfile, rising_line_at

MIN_CURVE_SAMPLES = 3
"""Samples taken while a stage ran below which its curve is left out (an even pace is assumed)."""


@dataclass
class ProfileRecorder:
    """Accumulates what a run shows about its stages.

    Attributes:
        start_s: When the application started (seconds).
        nominal_cores: Total executor cores the profile is normalised to (instances × coresMax).
        source: Free text naming the application and its arguments.
        task_slots: Task slots of all executors together (instances × ``spark.executor.cores``);
            0 when unknown, and then no stage is given a latency.
        executor_slots: Task slots of one executor (``spark.executor.cores``), for sources
            that give the tasks' run time per executor; 0 when unknown.
    """

    start_s: float
    nominal_cores: float
    source: str = ""
    task_slots: int = 0
    executor_slots: int = 0
    _stages: dict[int, StageObservation] = field(default_factory=dict, init=False)
    _core_seconds: dict[int, float] = field(default_factory=dict, init=False)
    _active_seconds: dict[int, float] = field(default_factory=dict, init=False)
    _waiting_seconds: dict[int, float] = field(default_factory=dict, init=False)
    _seen_s: dict[int, float] = field(default_factory=dict, init=False)
    _busiest_share: dict[int, float] = field(default_factory=dict, init=False)
    _done_at: dict[int, list[tuple[float, int]]] = field(default_factory=dict, init=False)
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
                self._seen_s[stage.stage_id] = now_s
                self._keep_busiest_share(stage)
                if stage.status == "ACTIVE":
                    self._done_at.setdefault(stage.stage_id, []).append((now_s, stage.completed_tasks))
        self._last_s = now_s
        self._last_active = tuple(s.stage_id for s in obs.active_stages)

    def complete(self, stages: Iterable[StageObservation]) -> None:
        """Take the final word on stages (e.g. from the event log), over what the samples saw.

        Stages that never showed in a sample are added; a failed attempt replaces nothing.
        """
        for stage in stages:
            if stage.status == "COMPLETE":
                self._stages[stage.stage_id] = stage

    def _keep_busiest_share(self, stage: StageObservation) -> None:
        """Remember which share of a stage's task time its busiest executor ran.

        Spark's list of stages gives the tasks' run time per executor only in a stage's detail,
        which the sensor reads while the stage runs; the sample that sees it complete has the
        total only. The share seen last while it ran stands for the whole stage.
        """
        by_executor = stage.task_seconds_by_executor
        total = sum(by_executor.values())
        if by_executor and total > 0.0:
            self._busiest_share[stage.stage_id] = max(by_executor.values()) / total

    @property
    def stages_seen(self) -> int:
        """How many stages have run (or are running)."""
        return sum(1 for s in self._stages.values() if s.status in ("ACTIVE", "COMPLETE"))

    def profile(self, end_s: float) -> ApplicationProfile | None:
        """Build the profile of the run that ended at ``end_s``; ``None`` when no stage ran.

        A stage still active in the last observation (the driver can finish its last stage and
        exit between two observations) is taken to have gone on at the pace it had then: its
        end is extrapolated from the tasks it had done, never later than ``end_s``, and the
        time after it (the driver stopping) is the profile's tail. With no task done when last
        seen, it is taken to have ended at ``end_s``.
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
            completed_s, busy_s = self._end_of(stage, end_s)
            waiting_s = min(max(0.0, completed_s - submitted_s), self._waiting_seconds.get(stage.stage_id, 0.0))
            measured_s = max(0.0, completed_s - submitted_s - waiting_s)
            active_s = self._active_seconds.get(stage.stage_id, 0.0)
            mean_cores = self._core_seconds.get(stage.stage_id, 0.0) / active_s if active_s > 0 else self.nominal_cores
            latency_s = min(measured_s, max(0.0, measured_s - busy_s)) if busy_s is not None else 0.0
            result.append(
                StageProfile(
                    stage_id=stage.stage_id,
                    name=stage.name,
                    tasks=stage.num_tasks,
                    input_records=stage.input_records,
                    duration_s=latency_s + (measured_s - latency_s) * min(1.0, mean_cores / self.nominal_cores),
                    idle_before_s=max(0.0, submitted_s - previous_end_s) + waiting_s,
                    latency_s=latency_s,
                    progress_curve=self._curve(stage, submitted_s + waiting_s, completed_s),
                )
            )
            previous_end_s = max(previous_end_s, completed_s)
        return ApplicationProfile(
            nominal_cores=self.nominal_cores,
            stages=tuple(result),
            tail_s=max(0.0, end_s - previous_end_s),
            source=self.source,
        )

    def _curve(self, stage: StageObservation, start_s: float, end_s: float) -> tuple[float, ...]:
        """The share of the stage's tasks done at each tenth of ``[start_s, end_s]``.

        Between two known points (a task's finish, or a sample's count) progress is taken to
        grow evenly. Empty when too little is known.
        """
        tasks, span_s = stage.num_tasks, end_s - start_s
        if tasks <= 1 or span_s <= 0.0:
            return ()
        if len(stage.task_finish_times_s) == tasks:
            known = [(t, (k + 1) / tasks) for k, t in enumerate(sorted(stage.task_finish_times_s))]
        else:
            known = [(t, done / tasks) for t, done in self._done_at.get(stage.stage_id, ()) if start_s < t < end_s]
            if len(known) < MIN_CURVE_SAMPLES:
                return ()
        xs = [0.0, *((min(max(t, start_s), end_s) - start_s) / span_s for t, _ in known), 1.0]
        ys = [0.0, *(min(1.0, y) for _, y in known), 1.0]
        return tuple(rising_line_at(xs, ys, j / PROGRESS_CURVE_POINTS) for j in range(1, PROGRESS_CURVE_POINTS))

    def _end_of(self, stage: StageObservation, end_s: float) -> tuple[float, float | None]:
        """When a stage completed and how long its busiest task slots ran its tasks.

        For a stage still running when last seen, both are extrapolated from the tasks done.
        The busy time is ``None`` when the source does not give the tasks' run time.
        """
        if stage.completion_time_s is not None:
            return stage.completion_time_s, self._busy_s(stage, 1.0)
        seen_s = self._seen_s.get(stage.stage_id, end_s)
        done, tasks = stage.completed_tasks, stage.num_tasks
        if stage.submission_time_s is None or done <= 0 or tasks <= 0:
            return end_s, None
        elapsed_s = max(0.0, seen_s - stage.submission_time_s)
        completed_s = min(end_s, seen_s + elapsed_s * (tasks - done) / done)
        return max(completed_s, stage.submission_time_s), self._busy_s(stage, tasks / done)

    def _busy_s(self, stage: StageObservation, scale: float) -> float | None:
        """The busiest executor's task run time over its slots, times ``scale``.

        Without a breakdown by executor in the stage's last sample, the busiest executor's
        share seen while the stage ran is applied to its total; the whole stage's over all
        slots when no sample broke it down.
        """
        if stage.task_seconds_by_executor and self.executor_slots > 0:
            return max(stage.task_seconds_by_executor.values()) * scale / self.executor_slots
        share = self._busiest_share.get(stage.stage_id)
        if share is not None and stage.task_seconds > 0.0 and self.executor_slots > 0:
            return stage.task_seconds * share * scale / self.executor_slots
        if stage.task_seconds > 0.0 and self.task_slots > 0:
            return stage.task_seconds * scale / self.task_slots
        return None
