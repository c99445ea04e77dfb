"""Progress of each executor through its share of the running stage(s).

Spark hands tasks to whichever executor has a free slot, so an executor's share is not
fixed in advance. Its share is taken as what it has done plus an even split of what is left:

``y_i = (done_i + r_i) / (done_i + r_i + left / n)``

so a fast executor is ahead (and is slowed), a slow one is behind (and is sped up), and every
``y_i`` reaches 1 exactly when the stage does. In the last wave an executor with no task left
has done its share (``y_i = 1``) and what is left is split among the others.

``r_i`` interpolates between task completions. Counted in finished tasks alone, ``y_i`` is a
staircase: flat while a task runs, a step when it ends. A regulator chasing a set point that
rises evenly raises the cores along each flat and cuts them after each step; with few tasks per
executor (an I/O-bound stage, a stage of long tasks) that is a swing of the cores every task.
Where the source says how long the running tasks have run, each counts for
``min(1, elapsed / mean) − ½`` of a task, ``mean`` being the mean run time of the stage's
finished tasks on that executor (on any executor before it has finished one): a ramp from
half a task below the staircase to half a task above it, through the staircase at mid-task.
What the running tasks have done counts as done in ``left`` too, so the even split does not
jump either. ``y_i`` is then continuous when a task ends at the mean run time (its ramp is at
``+½``, the next task's starts at ``−½`` on one more finished task), steps up only by what the
ramp had not reached when one ends sooner, follows the staircase on average, so a
progress curve profiled in finished tasks still describes it, and it is never more than half a
task from it: a task that runs past the mean (its executor's cores were cut) holds the ramp at
``+½`` until it ends. As every running task counts for at most half of itself, ``y_i`` reaches
1 only when the stage ends.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from dynaspark.observation import StageObservation


def executor_progress(
    stages: Sequence[StageObservation], executor_ids: Sequence[str], idle: Collection[str] = ()
) -> dict[str, float]:
    """Return ``y`` in [0, 1] per executor for the given (running) stages.

    Args:
        stages: The stages running now.
        executor_ids: The live executors.
        idle: Executors without a task that cannot get one now (the last wave, or tasks held
            for the executors that have their data).

    Returns:
        Progress per executor id.
    """
    if not executor_ids:
        return {}
    tasks = sum(s.num_tasks for s in stages)
    done_total = sum(s.completed_tasks for s in stages)
    left = max(0, tasks - done_total)
    if left == 0:
        return {e: 1.0 for e in executor_ids}
    working = [e for e in executor_ids if e not in idle] or list(executor_ids)
    done = {e: sum(s.completed_tasks_by_executor.get(e, 0) for s in stages) for e in working}
    # What the running tasks have done counts as done, for the executor and for what is left.
    counted = {e: max(0.0, done[e] + running_tasks_share(stages, e)) for e in working}
    # A source that refreshes finished and running tasks apart can show one task as both: no
    # more than half of each unfinished task counts as done in any case.
    left_counted = max(left - sum(counted[e] - done[e] for e in working), left / 2.0)
    even_share = left_counted / len(working)
    result = {}
    for e in executor_ids:
        if e not in working:
            result[e] = 1.0
            continue
        total = counted[e] + even_share
        result[e] = counted[e] / total if total > 0 else 0.0
    return result


def running_tasks_share(stages: Sequence[StageObservation], executor: str) -> float:
    """``r``: what an executor's running tasks add to its finished ones, in tasks (see above).

    0 where the source does not report running tasks, or before any task of the stage ended.
    """
    share = 0.0
    for stage in stages:
        elapsed = stage.running_task_seconds_by_executor.get(executor, ())
        mean_s = _mean_task_seconds(stage, executor) if elapsed else None
        if mean_s is None:
            continue
        share += sum(min(1.0, max(0.0, t) / mean_s) - 0.5 for t in elapsed)
    return share


def _mean_task_seconds(stage: StageObservation, executor: str) -> float | None:
    """Mean run time of the stage's finished tasks on ``executor``, else on all executors."""
    done = stage.completed_tasks_by_executor.get(executor, 0)
    seconds = stage.task_seconds_by_executor.get(executor, 0.0)
    if done > 0 and seconds > 0.0:
        return seconds / done
    if stage.completed_tasks > 0 and stage.task_seconds > 0.0:
        return stage.task_seconds / stage.completed_tasks
    return None
