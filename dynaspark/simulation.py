"""A simulated Spark application: the plant the control law is tested and tuned against.

Stages run one after another; each has tasks whose work (core-seconds) is drawn around a
mean. Executors have task slots; a running task advances at ``min(demand, cores / running)`` core,
because a task is one thread (``demand`` is 1, less for a task that waits on I/O) and the
executor's cores are shared by its running tasks; each executor's use and throttling are
accounted as its cgroup would. A
stage may have a latency per task: the wall time a slot holds a task before it runs (launch,
fetch), which cores do not shorten and which Spark does not count as task run time. Before
a stage starts the driver may work alone (``idle_before_s``); stages of one job are announced
(``PENDING``) when the job starts, as Spark does. A stage may prefer some executors (its data
is cached there): the others get its tasks only after ``locality_wait_s`` without a launch on a
preferred one, as Spark's delay scheduling (``spark.locality.wait``) does. Deterministic for a
given seed.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from dynaspark.law import DeadlineControlLaw, LawState
from dynaspark.observation import ExecutorCpu, ProgressObservation, StageObservation, StageStatus
from dynaspark.profile import ApplicationProfile
from dynaspark.profiler import ProfileRecorder

SUBSTEP_S = 0.05
"""Integration step of the plant (seconds)."""


@dataclass(frozen=True)
class SimStage:
    """One stage of a simulated application.

    Attributes:
        stage_id: Stage id (stages run in id order).
        job_id: The job it belongs to (a job's stages are announced together).
        tasks: Number of tasks.
        task_core_s: Mean work of one task (core-seconds).
        idle_before_s: Driver time before the stage starts.
        name: Stage name.
        preferred_executors: Executors holding the stage's data (empty: no preference).
        task_latency_s: Wall time each task holds its slot before it runs (no cores used).
        warmup_core_s: Extra work of the first task each executor runs in the stage (its
            Python worker starting, the JVM compiling the stage's code).
        task_demand_cores: The most CPU one running task can use (1: a busy thread; less: a
            task that waits on I/O part of the time and runs no faster with more cores).
    """

    stage_id: int
    job_id: int
    tasks: int
    task_core_s: float
    idle_before_s: float = 0.0
    name: str = "stage"
    preferred_executors: tuple[str, ...] = ()
    task_latency_s: float = 0.0
    warmup_core_s: float = 0.0
    task_demand_cores: float = 1.0


@dataclass
class _Task:
    latency_s: float
    work: float
    run_s: float = 0.0


@dataclass
class _StageRun:
    queue: list[float]
    running: dict[str, list[_Task]]
    done_by_executor: dict[str, int]
    task_seconds: dict[str, float] = field(default_factory=dict)
    submitted_s: float | None = None
    completed_s: float | None = None
    last_local_launch_s: float | None = None
    warmed: set[str] = field(default_factory=set)


@dataclass
class SimulatedSparkApp:
    """The plant: advance it with cores per executor, observe it like Spark's REST API.

    Attributes:
        stages: The application's stages.
        executor_ids: Executors.
        slots_per_executor: Task slots per executor (``spark.executor.cores``).
        noise: Relative spread of a task's work (log-normal sigma).
        work_scale: Multiplies every task's work (a run slower or faster than the profile).
        seed: Random seed.
        start_s: Clock at the start.
        locality_wait_s: Spark's ``spark.locality.wait``: how long a stage's tasks wait for a
            preferred executor before any executor may run them.
        reports_running_tasks: Report how long each running task has run, as Spark's REST API
            does (``False``: finished tasks only, as the event log).
    """

    stages: Sequence[SimStage]
    executor_ids: tuple[str, ...] = ("0", "1")
    slots_per_executor: int = 1
    noise: float = 0.2
    work_scale: float = 1.0
    seed: int = 0
    start_s: float = 0.0
    locality_wait_s: float = 3.0
    reports_running_tasks: bool = True
    t_s: float = field(init=False)
    _runs: dict[int, _StageRun] = field(init=False, default_factory=dict)
    _index: int = field(init=False, default=0)
    _idle_left_s: float = field(init=False, default=0.0)
    _rng: random.Random = field(init=False)
    _next_executor: int = field(init=False, default=0)
    core_seconds: float = field(init=False, default=0.0)
    used_core_seconds: float = field(init=False, default=0.0)
    last_cpu: dict[str, ExecutorCpu] = field(init=False, default_factory=dict)
    """What each executor used over the last :meth:`advance`, as its cgroup would account it."""
    _used: dict[str, float] = field(init=False, default_factory=dict)
    _runnable: dict[str, int] = field(init=False, default_factory=dict)
    _throttled: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        """Draw every task's work and start the first stage's idle time."""
        self.t_s = self.start_s
        self._rng = random.Random(self.seed)
        for st in self.stages:
            works = [
                st.task_core_s * self.work_scale * self._rng.lognormvariate(0.0, self.noise) for _ in range(st.tasks)
            ]
            self._runs[st.stage_id] = _StageRun(
                queue=works, running={e: [] for e in self.executor_ids}, done_by_executor={}
            )
        self._idle_left_s = self.stages[0].idle_before_s if self.stages else 0.0

    @property
    def finished(self) -> bool:
        """Whether every stage has completed."""
        return self._index >= len(self.stages)

    def advance(self, cores: Mapping[str, float], dt_s: float) -> None:
        """Run the plant for ``dt_s`` seconds with the given cores per executor."""
        elapsed = 0.0
        self._used = dict.fromkeys(self.executor_ids, 0.0)
        self._runnable = dict.fromkeys(self.executor_ids, 0)
        self._throttled = dict.fromkeys(self.executor_ids, 0)
        while elapsed < dt_s - 1e-9 and not self.finished:
            h = min(SUBSTEP_S, dt_s - elapsed)
            self._substep(cores, h)
            elapsed += h
        self.core_seconds += sum(cores.get(e, 0.0) for e in self.executor_ids) * dt_s
        self.used_core_seconds += sum(self._used.values())
        self.t_s += dt_s - elapsed
        self.last_cpu = {
            e: ExecutorCpu(
                self._used[e] / dt_s,
                self._throttled[e] / self._runnable[e] if self._runnable[e] else 0.0,
            )
            for e in self.executor_ids
            if dt_s > 0
        }

    def _substep(self, cores: Mapping[str, float], h: float) -> None:
        self.t_s += h
        stage = self.stages[self._index]
        run = self._runs[stage.stage_id]
        if run.submitted_s is None:
            self._idle_left_s -= h
            if self._idle_left_s > 1e-9:
                return
            run.submitted_s = self.t_s
        self._assign(run, stage)
        for e in self.executor_ids:
            tasks = run.running[e]
            if not tasks:
                continue
            working = [t for t in tasks if t.latency_s <= 1e-9]
            per_task = cores.get(e, 0.0) / len(working) if working else 0.0
            speed = min(stage.task_demand_cores, per_task) if working else 0.0
            if working:
                self._used[e] = self._used.get(e, 0.0) + speed * len(working) * h
                self._runnable[e] = self._runnable.get(e, 0) + 1
                if per_task < stage.task_demand_cores - 1e-9:
                    self._throttled[e] = self._throttled.get(e, 0) + 1
            for task in tasks:
                if task.latency_s > 1e-9:
                    task.latency_s -= h
                else:
                    task.work -= speed * h
                    task.run_s += h
            finished = [t for t in tasks if t.latency_s <= 1e-9 and t.work <= 0]
            run.running[e] = [t for t in tasks if t not in finished]
            if finished:
                run.done_by_executor[e] = run.done_by_executor.get(e, 0) + len(finished)
                run.task_seconds[e] = run.task_seconds.get(e, 0.0) + sum(t.run_s for t in finished)
        if not run.queue and not any(run.running.values()):
            run.completed_s = self.t_s
            self._index += 1
            if not self.finished:
                self._idle_left_s = self.stages[self._index].idle_before_s

    def _assign(self, run: _StageRun, stage: SimStage) -> None:
        """Hand queued tasks to free slots, executors taken in turn as Spark's offers are."""
        n = len(self.executor_ids)
        preferred = stage.preferred_executors
        for i in range(n):
            e = self.executor_ids[(self._next_executor + i) % n]
            local = not preferred or e in preferred
            if not local:
                waited_since = run.last_local_launch_s if run.last_local_launch_s is not None else run.submitted_s
                if waited_since is not None and self.t_s - waited_since < self.locality_wait_s - 1e-9:
                    continue
            while run.queue and len(run.running[e]) < self.slots_per_executor:
                warmup = 0.0 if e in run.warmed else stage.warmup_core_s * self.work_scale
                run.warmed.add(e)
                run.running[e].append(_Task(stage.task_latency_s, run.queue.pop() + warmup))
                if local and preferred:
                    run.last_local_launch_s = self.t_s
        self._next_executor = (self._next_executor + 1) % n

    def _running_seconds(self, run: _StageRun) -> dict[str, tuple[float, ...]]:
        """How long each running task has run, per executor (measured as ``task_seconds``)."""
        if not self.reports_running_tasks:
            return {}
        return {e: tuple(t.run_s for t in tasks) for e, tasks in run.running.items() if tasks}

    def observe(self) -> ProgressObservation:
        """Return what Spark's REST API would report now."""
        started_jobs = {st.job_id for st in self.stages if self._runs[st.stage_id].submitted_s is not None}
        out = []
        for i, st in enumerate(self.stages):
            if st.job_id not in started_jobs:
                continue
            run = self._runs[st.stage_id]
            status: StageStatus
            if i < self._index:
                status = "COMPLETE"
            elif run.submitted_s is not None:
                status = "ACTIVE"
            else:
                status = "PENDING"
            out.append(
                StageObservation(
                    stage_id=st.stage_id,
                    name=st.name,
                    status=status,
                    num_tasks=st.tasks,
                    completed_tasks=sum(run.done_by_executor.values()),
                    completed_tasks_by_executor=dict(run.done_by_executor),
                    input_records=sum(run.done_by_executor.values()) * 1000,
                    submission_time_s=run.submitted_s,
                    completion_time_s=run.completed_s,
                    task_seconds=sum(run.task_seconds.values()),
                    task_seconds_by_executor=dict(run.task_seconds),
                    running_task_seconds_by_executor=self._running_seconds(run) if status == "ACTIVE" else {},
                )
            )
        current = None if self.finished else self._runs[self.stages[self._index].stage_id]
        running = {e: len(current.running[e]) if current is not None else 0 for e in self.executor_ids}
        return ProgressObservation(
            stages=tuple(out),
            executor_ids=self.executor_ids,
            application_id="app-sim",
            finished=self.finished,
            active_tasks_by_executor=running,
        )


@dataclass(frozen=True)
class LoopSample:
    """One period of a simulated closed loop.

    Attributes:
        t_s: Time of the step.
        cores: Cores applied per executor.
        set_point: The stage set point (``None`` between stages).
        stage_progress: Fraction of the running stage done.
        stage_id: The stage regulated.
    """

    t_s: float
    cores: dict[str, float]
    set_point: float | None
    stage_progress: float | None
    stage_id: int | None


def run_closed_loop(
    app: SimulatedSparkApp,
    law: DeadlineControlLaw,
    state: LawState,
    *,
    period_s: float = 1.0,
    max_s: float = 3600.0,
    stop_after_steps: int | None = None,
    metered: bool = True,
    resize_lag_periods: int = 0,
) -> tuple[LawState, list[LoopSample]]:
    """Drive the plant with the law until the application ends (or ``stop_after_steps``).

    Args:
        app: The plant (advanced in place).
        law: The control law.
        state: The law's state to start from.
        period_s: Sampling period.
        max_s: Give up after this much simulated time.
        stop_after_steps: Stop after this many steps (to test resuming).
        metered: Tell the law what each executor used over the period before, as the local
            cgroup meter does (``False``: progress only, as in a cluster without throttling data).
        resize_lag_periods: How many periods a resize takes to reach the plant (a kubelet that
            applies each resize that long after it was asked): the plant runs each period under
            the cores decided that many periods before, and under coresMax (a new executor pod's)
            until the first decision arrives.

    Returns:
        The law's last state and one sample per step.
    """
    samples: list[LoopSample] = []
    in_flight = deque([dict.fromkeys(app.executor_ids, law.config.gains.cores_max)] * resize_lag_periods)
    while not app.finished and app.t_s - app.start_s < max_s:
        if stop_after_steps is not None and len(samples) >= stop_after_steps:
            break
        obs = app.observe()
        if metered and app.last_cpu:
            obs = replace(obs, cpu=dict(app.last_cpu))
        state, decision = law.step(state, obs, app.t_s)
        samples.append(
            LoopSample(app.t_s, dict(decision.cores), decision.set_point, decision.stage_progress, decision.stage_id)
        )
        in_flight.append(dict(decision.cores))
        app.advance(in_flight.popleft(), period_s)
    return state, samples


def profile_at_cores(stages: Sequence[SimStage], cores: float, executors: int = 2, seed: int = 0) -> ApplicationProfile:
    """Run the plant with every executor at ``cores`` and record its profile (a first run)."""
    ids = tuple(str(i) for i in range(executors))
    app = SimulatedSparkApp(stages, executor_ids=ids, seed=seed)
    recorder = ProfileRecorder(
        start_s=app.start_s,
        nominal_cores=cores * executors,
        source="simulation",
        task_slots=executors,
        executor_slots=1,
    )
    while not app.finished:
        recorder.record(app.t_s, app.observe(), cores * executors)
        app.advance({e: cores for e in ids}, 1.0)
    profile = recorder.profile(app.t_s)
    assert profile is not None
    return profile
