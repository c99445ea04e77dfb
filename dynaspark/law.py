"""The DeadlineJob control law: planner + per-executor regulators + feasibility + contention.

:meth:`DeadlineControlLaw.step` is a pure function of (state, observation, now): it returns
the next state and a :class:`Decision` (cores per executor and the figures a user wants).
The state is a plain dataclass that serialises to a dict, so a restarted loop (or operator)
resumes exactly where the previous one stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from dynaspark.api import DeadlineJob
from dynaspark.feasibility import completion_at_cores_from_profile, completion_at_cores_from_rate
from dynaspark.law_state import Decision, LawState
from dynaspark.observation import ExecutorCpu, ProgressObservation, StageObservation
from dynaspark.planner import StageDeadlinePlanner, StagePlan
from dynaspark.profile import ApplicationProfile
from dynaspark.progress_share import executor_progress
from dynaspark.regulator import ExecutorCpuRegulator, RegulatorGains
from mlscale.contention import share_capacity


@dataclass(frozen=True)
class LawConfig:
    """Constants of one DeadlineJob's law.

    Attributes:
        deadline_s: The deadline, from the application's start (seconds).
        instances: Executors asked for.
        gains: Regulator constants (K, Ti, coresMin, coresMax, quantum).
        period_s: The sampling period ``Ts`` (seconds).
        alpha: ``D_app = start + alpha·deadline``.
        beta: Weight of stage count against profiled durations in per-stage deadlines.
        capacity_cores: Cores of the node/machine the executors share, or ``None`` for no limit.
        unprofiled_horizon: Without a profile, the fraction of the time left planned for the
            stages Spark has announced.
        usage_ceiling: Cap a busy executor that did not use its cores (see
            :meth:`DeadlineControlLaw._usage_ceiling`); needs a meter that reports throttling.
        usage_headroom: The cap's margin over what was used, relative to it.
        usage_headroom_cores: The cap's margin over what was used, absolute (cores).
        unthrottled_below: Throttled share of the CFS periods under which an executor counts as
            having had all the CPU it wanted.
        usage_growth: A busy executor that ran out of quota gets at most this multiple of the
            cores it held in the next period (its use said nothing of how much more it wants).
    """

    deadline_s: float
    instances: int
    gains: RegulatorGains
    period_s: float = 1.0
    alpha: float = 0.95
    beta: float = 0.33
    capacity_cores: float | None = None
    unprofiled_horizon: float = 0.5
    usage_ceiling: bool = True
    usage_headroom: float = 0.25
    usage_headroom_cores: float = 0.1
    unthrottled_below: float = 0.05
    usage_growth: float = 2.0

    @property
    def max_total_cores(self) -> float:
        """All executors at coresMax."""
        return self.instances * self.gains.cores_max


class DeadlineControlLaw:
    """Turns progress observations into cores per executor so the deadline is met.

    Args:
        config: The constants.
        profile: The stage profile, or ``None`` to plan on task counts.
    """

    def __init__(self, config: LawConfig, profile: ApplicationProfile | None = None) -> None:
        self.config = config
        self.profile = profile
        self.planner = StageDeadlinePlanner(
            alpha=config.alpha, beta=config.beta, profile=profile, unprofiled_horizon=config.unprofiled_horizon
        )
        self.regulator = ExecutorCpuRegulator(config.gains)

    def initial_state(self, start_s: float) -> LawState:
        """Return the state of an application that starts at ``start_s``."""
        return LawState(start_s=start_s)

    def step(self, state: LawState, obs: ProgressObservation, now_s: float) -> tuple[LawState, Decision]:
        """Run one period.

        Args:
            state: The state after the previous step.
            obs: The application's progress now.
            now_s: Now (seconds since the epoch, the clock of ``state.start_s``).

        Returns:
            The next state and the decision to apply.
        """
        cfg = self.config
        gains = cfg.gains
        dt_s = cfg.period_s if state.last_step_s is None else min(max(0.0, now_s - state.last_step_s), 5 * cfg.period_s)
        app_deadline_s = self.planner.application_deadline_s(state.start_s, cfg.deadline_s)
        deadline_at_s = state.start_s + cfg.deadline_s
        executors = obs.executor_ids
        regulators = {e: state.regulators[e] for e in executors if e in state.regulators}

        if not obs.stages and state.plan is not None:
            # The driver stopped answering after stages ran (it is exiting): hold everything.
            cores = dict(state.applied_cores)
            return replace(state, last_step_s=now_s), Decision(
                cores=cores,
                requested_cores=dict(cores),
                stage_id=None,
                set_point=None,
                stage_progress=None,
                executor_progress={},
                app_progress=state.app_progress,
                app_deadline_s=app_deadline_s,
                deadline_at_s=deadline_at_s,
                stage_deadline_at_s=None,
                predicted_completion_s=None,
                at_risk=state.at_risk,
                contended=False,
                planned_on_profile=state.plan.on_profile,
            )
        active = obs.active_stages
        if not active or not executors:
            # Between stages only the driver works. Once that has lasted a whole period the
            # executors idle at coresMin; the regulators keep their state for the next stage.
            # A stage submitted before any executor has registered waits like the driver's
            # work does: its plan starts when there are executors to run it.
            for e in executors:
                regulators.setdefault(e, self.regulator.start(self._idle_cores(state)))
            idle_since_s = now_s if state.idle_since_s is None else state.idle_since_s
            idle_long = now_s - idle_since_s >= cfg.period_s - 1e-9
            requested = {e: gains.cores_min if idle_long else r.cores for e, r in regulators.items()}
            predicted = self._predict(obs, None, 0.0, state, now_s, idle_elapsed_s=now_s - idle_since_s)
            at_risk = self._risk(state.at_risk, predicted, app_deadline_s, deadline_at_s)
            if at_risk and not idle_long:
                requested = {e: gains.cores_max for e in executors}
            cores, contended = self._share(requested)
            app_progress = self._app_progress(obs, None, 0.0) if obs.stages else state.app_progress
            new_state = replace(
                state,
                last_step_s=now_s,
                regulators=regulators,
                at_risk=at_risk,
                idle_since_s=idle_since_s,
                applied_cores=dict(cores),
                app_progress=app_progress,
                usage_capped=(),
            )
            return new_state, Decision(
                cores=cores,
                requested_cores=requested,
                stage_id=None,
                set_point=None,
                stage_progress=None,
                executor_progress={},
                app_progress=app_progress,
                app_deadline_s=app_deadline_s,
                deadline_at_s=deadline_at_s,
                stage_deadline_at_s=None,
                predicted_completion_s=predicted,
                at_risk=at_risk,
                contended=contended,
                planned_on_profile=None if state.plan is None else state.plan.on_profile,
            )

        current = active[0]
        plan = state.plan
        stage_core_seconds = state.stage_core_seconds
        rate_origin = state.rate_origin
        new_stage = False
        if plan is None or plan.stage_id != current.stage_id:
            new_stage = True
            announced = [s.num_tasks for s in obs.pending_stages if s.stage_id > current.stage_id]
            announced += [s.num_tasks for s in active[1:]]
            # The stage started when Spark submitted it, possibly a little before this step.
            stage_start_s = now_s
            if current.submission_time_s is not None:
                earliest_s = state.last_step_s if state.last_step_s is not None else state.start_s
                stage_start_s = min(now_s, max(earliest_s, current.submission_time_s))
            plan = self.planner.plan_stage(
                current.stage_id, current.num_tasks, announced, stage_start_s, app_deadline_s
            )
            stage_core_seconds = 0.0
            rate_origin = None
            initial = self._feed_forward_cores(plan, max(len(executors), cfg.instances))
            regulators = {
                e: self.regulator.start(initial if initial is not None else r.cores) for e, r in regulators.items()
            }
            if initial is not None:
                # An executor first seen as the stage starts begins where its peers do.
                for e in executors:
                    regulators.setdefault(e, self.regulator.start(initial))
            dt_s = 0.0
        for e in executors:
            regulators.setdefault(e, self.regulator.start(self._idle_cores(state)))

        stage_tasks = sum(s.num_tasks for s in active)
        stage_done = sum(s.completed_tasks for s in active)
        stage_progress = stage_done / stage_tasks if stage_tasks else 1.0
        stage_core_seconds += state.paced_cores({e: state.applied_cores.get(e, 0.0) for e in executors}) * dt_s
        if rate_origin is None and current.completed_tasks > 0:
            rate_origin = (current.completed_tasks, stage_core_seconds)
        rated = replace(state, stage_core_seconds=stage_core_seconds, rate_origin=rate_origin)
        predicted = self._predict(obs, current, stage_progress, rated, now_s)
        at_risk = self._risk(state.at_risk, predicted, app_deadline_s, deadline_at_s)

        # An executor without a task cannot use cores: it idles at coresMin and its regulator
        # holds. In the last wave that is certain at once. Before it, an executor can wait for
        # tasks that delay scheduling keeps for executors holding their data; it counts as
        # waiting once two steps in a row saw it without a task and with no task completed in
        # between (one look could fall in the instant between two of its tasks).
        done_by = {e: sum(s.completed_tasks_by_executor.get(e, 0) for s in active) for e in executors}
        taskless = {e: done_by[e] for e in obs.taskless_executor_ids() if e in done_by}
        if not taskless and obs.active_tasks_by_executor and not any(obs.active_tasks_by_executor.values()):
            # A look at the instant when no executor runs a task says nothing new: an executor
            # that was waiting and has completed nothing since is waiting still.
            taskless = {e: d for e, d in state.taskless.items() if done_by.get(e) == d}
        waiting = {e for e, done in taskless.items() if not new_stage and state.taskless.get(e) == done}
        if not self._room_to_idle_waiting(obs, current, predicted, app_deadline_s):
            waiting = set()
        idle = obs.idle_executor_ids() | waiting
        progress = executor_progress(active, executors, idle)
        set_point = self._set_point(plan, now_s)

        busy = [e for e in executors if e not in idle]
        if at_risk:
            updated = {e: self.regulator.start(gains.cores_max) for e in busy}
        else:
            updated = {e: self.regulator.update(regulators[e], set_point, progress[e], dt_s) for e in busy}
        requested = {e: updated[e].cores if e in updated else gains.cores_min for e in executors}
        ceilings: dict[str, float] = {}
        if not at_risk and not new_stage:
            for e in busy:
                ceiling = self._usage_ceiling(obs, state, e, ahead=progress[e] > set_point)
                if ceiling is not None and ceiling < requested[e]:
                    ceilings[e] = ceiling
                    requested[e] = ceiling
        cores, contended = self._share(requested)
        # Anti-windup against what is really applied when contention cut the request. A usage
        # ceiling is not saturation: the regulator keeps its own output, which applies again as
        # soon as the executor wants more than the ceiling.
        updated = {
            e: replace(r, cores=cores[e], integral=cores[e] - r.proportional) if cores[e] != requested[e] else r
            for e, r in updated.items()
        }
        updated.update({e: regulators[e] for e in executors if e in idle})

        app_progress = self._app_progress(obs, current, stage_progress)
        new_state = LawState(
            start_s=state.start_s,
            last_step_s=now_s,
            plan=plan,
            regulators=updated,
            stage_core_seconds=stage_core_seconds,
            rate_origin=rate_origin,
            at_risk=at_risk,
            applied_cores=dict(cores),
            app_progress=app_progress,
            taskless=taskless,
            # Only executors that had enough: one held back while it ran out of quota was short
            # of cores, and the stage's pace and the profile count it with what it had.
            usage_capped=tuple(sorted(e for e in ceilings if not self._throttled(obs.cpu.get(e)))),
        )
        return new_state, Decision(
            cores=cores,
            requested_cores=requested,
            stage_id=current.stage_id,
            set_point=set_point,
            stage_progress=stage_progress,
            executor_progress=progress,
            app_progress=app_progress,
            app_deadline_s=app_deadline_s,
            deadline_at_s=deadline_at_s,
            stage_deadline_at_s=plan.deadline_at_s,
            predicted_completion_s=predicted,
            at_risk=at_risk,
            contended=contended,
            planned_on_profile=plan.on_profile,
            usage_ceilings=ceilings,
        )

    def _usage_ceiling(self, obs: ProgressObservation, state: LawState, executor: str, *, ahead: bool) -> float | None:
        """The most cores a busy executor can use now, from what it used in the period that ends.

        An executor that had cores above coresMin and never ran out of quota over the period
        (its CFS throttling says so) wanted no more than it used: its tasks wait on I/O, on
        shuffle fetches, on the driver. More cores than it used plus headroom would sit idle;
        the ceiling caps them there. The headroom is for an executor behind its set point, so
        that a burst of its tasks is not slowed; one ``ahead`` of it is capped at what it used,
        without headroom: its bursts run out of quota and its tasks slow down, which is what
        an executor ahead should do (one whose tasks wait on I/O is otherwise never slowed by
        the regulator: it keeps its pace at any cores above what it uses, and ends the stage,
        and the job, early). An executor that did run out of quota wants more than it
        held, but not how much more: it gets at most ``usage_growth`` times what it held, and
        the regulator's own output applies once that is more (the regulator's raises past what
        an executor then used, and a lifted cap's jump back to the regulator's output, were
        most of what the benchmark's executors left unused: ``bench/allocation.py``).
        ``None`` where no ceiling applies: no meter, no throttling figure (a cluster's executor
        whose pod meter does not answer), or an executor that ran at coresMin because it idled (an
        idle one says nothing of what its next task needs); one its own cap held at coresMin
        grows from there once it is throttled.
        """
        cfg = self.config
        if not cfg.usage_ceiling:
            return None
        cpu = obs.cpu.get(executor)
        held = state.applied_cores.get(executor)
        if cpu is None or cpu.throttled_share is None or held is None:
            return None
        if held <= cfg.gains.cores_min + 1e-9 and executor not in state.usage_capped:
            # Held at coresMin because it idled: says nothing. Held there by its own cap: the
            # cap stands until the executor runs out of quota, then grows.
            return None
        q = cfg.gains.quantum
        if self._throttled(cpu):
            wanted = held * cfg.usage_growth
        elif ahead:
            wanted = cpu.used_cores
        else:
            wanted = cpu.used_cores * (1.0 + cfg.usage_headroom) + cfg.usage_headroom_cores
        ceiling = math.ceil(wanted / q - 1e-9) * q
        return round(min(cfg.gains.cores_max, max(cfg.gains.cores_min, ceiling)), 6)

    def _throttled(self, cpu: ExecutorCpu | None) -> bool:
        """Whether a metered executor ran out of quota over the period that ends."""
        share = None if cpu is None else cpu.throttled_share
        return share is not None and share >= self.config.unthrottled_below

    def _room_to_idle_waiting(
        self, obs: ProgressObservation, current: StageObservation, predicted: float | None, app_deadline_s: float
    ) -> bool:
        """Whether the deadline can afford idling executors that wait for a task.

        A task that reaches a waiting executor runs at coresMin until the next period gives it
        cores: at most one period lost per stage on its critical path. Waiting executors idle
        only when the completion predicted at coresMax leaves that much before ``D_app`` for
        this stage and every stage after it.
        """
        if predicted is None:
            return False
        if self.profile is not None and self.profile.stage(current.stage_id) is not None:
            stages_left = 1 + len(self.profile.stages_after(current.stage_id))
        else:
            stages_left = 1 + sum(1 for s in obs.pending_stages if s.stage_id > current.stage_id)
        return app_deadline_s - predicted >= stages_left * self.config.period_s

    def _set_point(self, plan: StagePlan, now_s: float) -> float:
        """The share of the stage's tasks that should be done by now.

        The stage's time so far over its planned duration, mapped through its profiled progress
        curve when it has one (the pace its tasks ended at when profiled, stretched to the
        plan); a straight ramp otherwise.
        """
        time_fraction = min(1.0, max(0.0, (now_s - plan.start_s) / plan.duration_s))
        profiled = self.profile.stage(plan.stage_id) if self.profile is not None and plan.on_profile else None
        return time_fraction if profiled is None else profiled.planned_progress(time_fraction)

    def _idle_cores(self, state: LawState) -> float:
        """Cores for an executor that has no regulator yet: like its peers, else the middle."""
        if state.regulators:
            return sum(r.cores for r in state.regulators.values()) / len(state.regulators)
        g = self.config.gains
        return (g.cores_min + g.cores_max) / 2.0

    def _feed_forward_cores(self, plan: StagePlan, n_executors: int) -> float | None:
        """Cores per executor that would finish the profiled stage exactly at its deadline.

        Only the stage's scalable part takes longer on fewer cores; its latency takes the same.
        """
        if self.profile is None or not plan.on_profile or n_executors <= 0:
            return None
        stage = self.profile.stage(plan.stage_id)
        if stage is None:
            return None
        stretched_s = plan.duration_s - stage.latency_s
        if stretched_s <= 0.0:
            return None
        return stage.scalable_s * self.profile.nominal_cores / stretched_s / n_executors

    def _share(self, requested: dict[str, float]) -> tuple[dict[str, float], bool]:
        """Scale requests down to the capacity when they exceed it (floors at coresMin)."""
        cfg = self.config
        if cfg.capacity_cores is None or not requested:
            return dict(requested), False
        floors = {e: cfg.gains.cores_min for e in requested}
        shared, contended = share_capacity(requested, cfg.capacity_cores, floors)
        if not contended:
            return dict(requested), False
        q = cfg.gains.quantum
        # Round down so the quantised total never exceeds the capacity.
        return {e: max(cfg.gains.cores_min, round(int(c / q + 1e-9) * q, 6)) for e, c in shared.items()}, True

    def _predict(
        self,
        obs: ProgressObservation,
        current: StageObservation | None,
        fraction: float,
        state: LawState,
        now_s: float,
        *,
        idle_elapsed_s: float = 0.0,
    ) -> float | None:
        """Earliest completion at coresMax, from the profile when there is one."""
        total = self.config.max_total_cores
        done = obs.completed_stage_ids
        if self.profile is not None and (current is None or self.profile.stage(current.stage_id) is not None):
            return completion_at_cores_from_profile(
                self.profile,
                now_s=now_s,
                current_stage_id=None if current is None else current.stage_id,
                current_fraction_done=fraction,
                completed_stage_ids=done,
                total_cores=total,
                idle_elapsed_s=idle_elapsed_s,
                current_elapsed_s=state.stage_core_seconds / total if current is not None and total > 0 else 0.0,
                current_tasks=0 if current is None else current.num_tasks,
            )
        if current is None:
            return None
        announced = [s.num_tasks for s in obs.pending_stages if s.stage_id > current.stage_id]
        if state.rate_origin is None:
            return None
        origin_tasks, origin_core_seconds = state.rate_origin
        return completion_at_cores_from_rate(
            now_s=now_s,
            stage_core_seconds=state.stage_core_seconds - origin_core_seconds,
            stage_completed_tasks=current.completed_tasks - origin_tasks,
            stage_tasks=current.num_tasks - origin_tasks,
            announced_tasks_after=announced,
            total_cores=total,
        )

    @staticmethod
    def _risk(was_at_risk: bool, predicted: float | None, app_deadline_s: float, deadline_at_s: float) -> bool:
        """At risk when even coresMax misses the deadline; cleared once it would meet ``D_app`` again."""
        if predicted is None:
            return was_at_risk
        if was_at_risk:
            return predicted > app_deadline_s
        return predicted > deadline_at_s

    def _app_progress(self, obs: ProgressObservation, current: StageObservation | None, fraction: float) -> float:
        """Fraction of the application done: profiled durations when known, else tasks."""
        done_ids = obs.completed_stage_ids
        if self.profile is not None and self.profile.stages:
            total = sum(s.duration_s for s in self.profile.stages)
            done = sum(s.duration_s for s in self.profile.stages if s.stage_id in done_ids)
            if current is not None and (st := self.profile.stage(current.stage_id)) is not None:
                done += st.duration_s * fraction
            return min(1.0, done / total) if total > 0 else 0.0
        tasks = sum(s.num_tasks for s in obs.stages if s.status != "SKIPPED")
        completed = sum(s.completed_tasks for s in obs.stages if s.status != "SKIPPED")
        return completed / tasks if tasks else 0.0


__all__ = ["DeadlineControlLaw", "Decision", "LawConfig", "LawState"]


def law_config(job: DeadlineJob, capacity_cores: float | None) -> LawConfig:
    """The law's constants from a DeadlineJob's spec and the cores its executors' node(s) can give."""
    spec = job.spec
    return LawConfig(
        deadline_s=spec.deadline,
        instances=spec.executors.instances,
        gains=RegulatorGains(
            gain=spec.control.gain,
            integral_time_s=spec.control.integral_time_seconds,
            cores_min=spec.executors.cores_min,
            cores_max=spec.executors.cores_max,
        ),
        period_s=spec.control.period_seconds,
        alpha=spec.control.alpha,
        beta=spec.control.beta,
        capacity_cores=capacity_cores,
    )
