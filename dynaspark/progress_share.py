"""Progress of each executor through its share of the running stage(s).

Spark hands tasks to whichever executor has a free slot, so an executor's share is not
fixed in advance. Its share is taken as what it has done plus an even split of what is left:

``y_i = done_i / (done_i + left / n)``

so a fast executor is ahead (and is slowed), a slow one is behind (and is sped up), and every
``y_i`` reaches 1 exactly when the stage does. In the last wave an executor with no task left
has done its share (``y_i = 1``) and what is left is split among the others.
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
    even_share = left / len(working)
    result = {}
    for e in executor_ids:
        if e not in working:
            result[e] = 1.0
            continue
        done = sum(s.completed_tasks_by_executor.get(e, 0) for s in stages)
        result[e] = done / (done + even_share)
    return result
