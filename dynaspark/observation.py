"""What the progress sensor reports about a running Spark application.

Plain frozen dataclasses, filled by the Spark REST sensor on a real run and by the simulated
plant in tests; the control law reads nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

StageStatus = Literal["ACTIVE", "COMPLETE", "PENDING", "SKIPPED", "FAILED"]


@dataclass(frozen=True)
class StageObservation:
    """One stage (its latest attempt) as Spark reports it.

    Attributes:
        stage_id: Spark's stage id.
        name: Spark's stage name.
        status: ``ACTIVE``, ``COMPLETE``, ``PENDING``, ``SKIPPED`` or ``FAILED``.
        num_tasks: Tasks of the stage.
        completed_tasks: Tasks finished successfully.
        completed_tasks_by_executor: Finished tasks per executor id.
        input_records: Records read so far (input plus shuffle read).
        submission_time_s: When the stage was submitted (seconds since the epoch), if it was.
        completion_time_s: When it completed (seconds since the epoch), if it did.
        task_seconds: Wall time of its finished tasks added up (Spark's ``executorRunTime``):
            how long the tasks kept task slots busy.
        task_seconds_by_executor: The same per executor id, when the source says.
        task_finish_times_s: When each of its successful tasks finished (seconds since the
            epoch, ascending), when the source says (the event log does).
        running_task_seconds_by_executor: How long each of its running tasks has run so far
            (seconds), per executor id, when the source says (the REST API does); measured the
            way ``task_seconds`` is, so a running task can be set against the finished ones.
    """

    stage_id: int
    name: str
    status: StageStatus
    num_tasks: int
    completed_tasks: int
    completed_tasks_by_executor: Mapping[str, int] = field(default_factory=dict)
    input_records: int = 0
    submission_time_s: float | None = None
    completion_time_s: float | None = None
    task_seconds: float = 0.0
    task_seconds_by_executor: Mapping[str, float] = field(default_factory=dict)
    task_finish_times_s: tuple[float, ...] = ()
    running_task_seconds_by_executor: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def fraction_done(self) -> float:
        """Completed tasks over tasks, in [0, 1]."""
        if self.num_tasks <= 0:
            return 1.0
        return min(1.0, self.completed_tasks / self.num_tasks)


@dataclass(frozen=True)
class ExecutorCpu:
    """The CPU one executor used over the last period, as its cgroup accounts it.

    Attributes:
        used_cores: Cores it used on average over the period.
        throttled_share: The share of the CFS periods (100 ms) in which it ran out of quota,
            that is wanted more CPU than it was given; ``None`` when the source does not say.
    """

    used_cores: float
    throttled_share: float | None = None


@dataclass(frozen=True)
class ProgressObservation:
    """The application's state at one instant.

    Attributes:
        stages: Every stage the application has submitted or planned so far.
        executor_ids: Ids of the live executors (the driver left out).
        application_id: Spark's application id, once known.
        finished: ``True`` once the application has ended.
        active_tasks_by_executor: Tasks running now on each executor; empty when the source
            does not say (an executor missing from it is then taken to be busy).
        cpu: The CPU each executor used over the period that ends now, where it is metered
            (the executors' cgroups locally); empty when nothing meters it.
    """

    stages: tuple[StageObservation, ...] = ()
    executor_ids: tuple[str, ...] = ()
    application_id: str | None = None
    finished: bool = False
    active_tasks_by_executor: Mapping[str, int] = field(default_factory=dict)
    cpu: Mapping[str, ExecutorCpu] = field(default_factory=dict)

    @property
    def active_stages(self) -> tuple[StageObservation, ...]:
        """The stages running now, by stage id."""
        return tuple(sorted((s for s in self.stages if s.status == "ACTIVE"), key=lambda s: s.stage_id))

    @property
    def pending_stages(self) -> tuple[StageObservation, ...]:
        """The stages of submitted jobs that have not started yet, by stage id."""
        return tuple(sorted((s for s in self.stages if s.status == "PENDING"), key=lambda s: s.stage_id))

    def idle_executor_ids(self) -> frozenset[str]:
        """Executors with nothing to do until the running stages end (the last wave).

        That is: no task of theirs runs and every task of those stages has been handed out.
        Empty when the source does not report running tasks per executor.
        """
        if not self.active_tasks_by_executor:
            return frozenset()
        active = self.active_stages
        running = sum(self.active_tasks_by_executor.values())
        not_started = sum(s.num_tasks - s.completed_tasks for s in active) - running
        if not active or not_started > 0:
            return frozenset()
        return self._without_task()

    def taskless_executor_ids(self) -> frozenset[str]:
        """Executors that run no task now while others run the active stages' tasks.

        Besides the last wave, this happens when Spark's delay scheduling holds the waiting
        tasks for the executors that have their data (``spark.locality.wait``, 3 s by default),
        and for an instant between two tasks. Empty when the source does not report running
        tasks per executor, and when no executor runs a task.
        """
        if not self.active_tasks_by_executor or not self.active_stages:
            return frozenset()
        if sum(self.active_tasks_by_executor.values()) == 0:
            return frozenset()
        return self._without_task()

    def _without_task(self) -> frozenset[str]:
        """Executors the source reports with no running task (one it leaves out counts as busy)."""
        return frozenset(e for e in self.executor_ids if self.active_tasks_by_executor.get(e, 1) == 0)

    @property
    def completed_stage_ids(self) -> frozenset[int]:
        """Ids of the stages that have completed (or were skipped)."""
        return frozenset(s.stage_id for s in self.stages if s.status in ("COMPLETE", "SKIPPED"))
