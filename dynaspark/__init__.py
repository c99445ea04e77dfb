"""dynaspark: the DeadlineJob engine.

A Spark application finishes by its deadline with as few cores as that takes: a stage
profile gives per-stage deadlines (:mod:`dynaspark.planner`), one PI regulator per executor
turns the gap between a set point and measured progress into cores
(:mod:`dynaspark.regulator`), and :mod:`dynaspark.law` ties them together with the
feasibility check and the contention policy. Everything in those modules is pure; the
sensor (Spark's REST API) and the actuator (cgroup CPU quotas) live at the edge.
"""
