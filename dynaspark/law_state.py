"""State and output of the DeadlineJob control law, as plain serialisable dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynaspark.planner import StagePlan
from dynaspark.regulator import RegulatorState


@dataclass(frozen=True)
class LawState:
    """Everything the law needs to resume; serialises with :meth:`to_dict`.

    Attributes:
        start_s: When the application started (seconds since the epoch).
        last_step_s: When :meth:`DeadlineControlLaw.step` last ran.
        plan: The running stage's plan, once a stage has started.
        regulators: Regulator state per executor id.
        stage_core_seconds: Cores × seconds allocated since the running stage started.
        rate_origin: Tasks done and ``stage_core_seconds`` when the stage's first task
            finished: the start-up of a stage (Python workers, JIT) says nothing of its rate.
        at_risk: Whether the deadline is predicted to be missed even at coresMax.
        idle_since_s: Since when no stage has been running (``None`` while one is).
        applied_cores: The cores applied at the last step, per executor.
        app_progress: The application's progress at the last step.
        taskless: Executors that ran no task at the last step while others did, with the
            tasks each had completed in the running stage(s) then.
        usage_capped: Executors the last step capped at what they used (the usage ceiling)
            while they had all the cores they wanted; a cap that came out at coresMin holds
            until the executor is throttled. Not those held to a step because they ran out of
            quota: those were short of cores.
    """

    start_s: float
    last_step_s: float | None = None
    plan: StagePlan | None = None
    regulators: Mapping[str, RegulatorState] = field(default_factory=dict)
    stage_core_seconds: float = 0.0
    rate_origin: tuple[int, float] | None = None
    at_risk: bool = False
    idle_since_s: float | None = None
    applied_cores: Mapping[str, float] = field(default_factory=dict)
    app_progress: float = 0.0
    taskless: Mapping[str, int] = field(default_factory=dict)
    usage_capped: tuple[str, ...] = ()

    def paced_cores(self, applied: Mapping[str, float]) -> float:
        """The cores ``applied`` over the last period, as the stage's pace is judged by.

        An executor capped at what it used was not short of cores: more would not have made it
        faster. It counts with what its regulator asked (kept, uncapped, in its state), as it
        did before any cap, so that neither the rate of a stage nor a recorded profile takes
        the cap for a speed-up.
        """
        total = 0.0
        for executor, cores in applied.items():
            regulator = self.regulators.get(executor) if executor in self.usage_capped else None
            total += cores if regulator is None else max(cores, regulator.cores)
        return total

    def to_dict(self) -> dict[str, Any]:
        """Return the state as a plain, JSON-ready dict (camelCase keys, as in a status)."""
        plan = self.plan
        return {
            "startSeconds": self.start_s,
            "lastStepSeconds": self.last_step_s,
            "plan": None
            if plan is None
            else {
                "stageId": plan.stage_id,
                "startSeconds": plan.start_s,
                "durationSeconds": plan.duration_s,
                "weight": plan.weight,
                "onProfile": plan.on_profile,
            },
            "regulators": {name: reg.to_dict() for name, reg in sorted(self.regulators.items())},
            "stageCoreSeconds": self.stage_core_seconds,
            "rateOrigin": None if self.rate_origin is None else list(self.rate_origin),
            "atRisk": self.at_risk,
            "idleSinceSeconds": self.idle_since_s,
            "appliedCores": dict(sorted(self.applied_cores.items())),
            "appProgress": self.app_progress,
            "taskless": dict(sorted(self.taskless.items())),
            "usageCapped": list(self.usage_capped),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LawState:
        """Build the state from :meth:`to_dict`'s output."""
        raw_plan = data.get("plan")
        plan = (
            None
            if raw_plan is None
            else StagePlan(
                stage_id=int(raw_plan["stageId"]),
                start_s=float(raw_plan["startSeconds"]),
                duration_s=float(raw_plan["durationSeconds"]),
                weight=float(raw_plan["weight"]),
                on_profile=bool(raw_plan["onProfile"]),
            )
        )
        last = data.get("lastStepSeconds")
        idle = data.get("idleSinceSeconds")
        origin = data.get("rateOrigin")
        return cls(
            start_s=float(data["startSeconds"]),
            last_step_s=None if last is None else float(last),
            plan=plan,
            regulators={str(k): RegulatorState.from_dict(v) for k, v in dict(data.get("regulators", {})).items()},
            stage_core_seconds=float(data.get("stageCoreSeconds", 0.0)),
            rate_origin=None if origin is None else (int(origin[0]), float(origin[1])),
            at_risk=bool(data.get("atRisk", False)),
            idle_since_s=None if idle is None else float(idle),
            applied_cores={str(k): float(v) for k, v in dict(data.get("appliedCores", {})).items()},
            app_progress=float(data.get("appProgress", 0.0)),
            taskless={str(k): int(v) for k, v in dict(data.get("taskless", {})).items()},
            usage_capped=tuple(sorted(str(e) for e in data.get("usageCapped", []))),
        )


@dataclass(frozen=True)
class Decision:
    """What one step decided, and the figures behind it.

    Attributes:
        cores: Cores per executor id to apply now.
        requested_cores: What each executor asked before contention sharing (its regulator's
            output, capped by its usage ceiling).
        stage_id: The stage being regulated, ``None`` between stages.
        set_point: ``SP`` of that stage, in [0, 1].
        stage_progress: Fraction of the running stage(s) done.
        executor_progress: ``y`` per executor.
        app_progress: Estimated fraction of the whole application done.
        app_deadline_s: ``D_app`` (seconds since the epoch).
        deadline_at_s: ``start + deadline`` (seconds since the epoch).
        stage_deadline_at_s: When the running stage should be done.
        predicted_completion_s: Earliest completion, at coresMax (``None`` when unknown).
        at_risk: The deadline cannot be met even at coresMax (so all executors run at coresMax).
        contended: The requests exceeded the capacity and were scaled down.
        planned_on_profile: Whether the running stage was planned on the profile
            (``None`` between stages before any plan).
        usage_ceilings: Executors whose request was capped at what they used plus headroom
            (they were not throttled over the period before), with the cap.
    """

    cores: dict[str, float]
    requested_cores: dict[str, float]
    stage_id: int | None
    set_point: float | None
    stage_progress: float | None
    executor_progress: dict[str, float]
    app_progress: float
    app_deadline_s: float
    deadline_at_s: float
    stage_deadline_at_s: float | None
    predicted_completion_s: float | None
    at_risk: bool
    contended: bool
    planned_on_profile: bool | None
    usage_ceilings: Mapping[str, float] = field(default_factory=dict)

    @property
    def predicted_miss_s(self) -> float:
        """By how much the earliest completion overshoots the deadline (0 when it does not)."""
        if self.predicted_completion_s is None:
            return 0.0
        return max(0.0, self.predicted_completion_s - self.deadline_at_s)
