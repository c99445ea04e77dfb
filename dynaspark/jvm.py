"""The executor JVM options a DeadlineJob runs with, locally and in a pod.

**Just-in-time compilation.** A HotSpot JVM compiles hot code twice: quickly with C1, then again
with the optimising C2 compiler. C2's compiler threads burn CPU for tens of seconds after an
executor starts, and that CPU comes out of the executor's quota: under the small quotas the law
gives in a job's early stages, the tasks wait behind the compiler. A DeadlineJob's executors live
for seconds to minutes, where C2's faster code does not pay back its compile time, so executors
stop at C1 (``-XX:TieredStopAtLevel=1``) unless ``spark.executor.extraJavaOptions`` already says
how to compile (``TieredStopAtLevel``, ``TieredCompilation`` or ``CompilationMode``): set
``-XX:TieredStopAtLevel=4`` there to have C2 back for a long job.

**The driver, locally.** On one machine the driver JVM shares the cores with the executors, out
of any cgroup, and its C2 compiler threads take their CPU from the executors (``bench/jit.py --jvm
driver``: with C1 only the driver used 42–49 % less CPU and the examples finished 6–16 % sooner
on two cores). ``mlscale run`` starts it with C1 only as well
(``spark.driver.extraJavaOptions``, which spark-submit applies to a client-mode driver it
launches), under the same rule. In a pod the driver has its own CPU and is left as it is.

**The standalone master and worker**, which ``mlscale run`` starts for each run, compile with C1
only as well (``SPARK_DAEMON_JAVA_OPTS``, unless it already says how to compile): their C2
threads would go on compiling while the application's JVMs start, on the same cores.

**Processors.** A JVM sizes its garbage collector and compiler threads from the processors it
sees when it starts. In a pod that is its CPU limit, coresMax; on the local standalone cluster the
executor starts outside its cgroup and would see every core of the machine, so there it is told
``ceil(coresMax)`` processors (``-XX:ActiveProcessorCount``), unless the options set that too.
"""

from __future__ import annotations

from collections.abc import Mapping

EXECUTOR_JAVA_OPTIONS = "spark.executor.extraJavaOptions"
DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
QUICK_COMPILATION = "-XX:TieredStopAtLevel=1"
_COMPILATION_FLAGS = ("TieredStopAtLevel", "TieredCompilation", "CompilationMode")


def executor_java_options(spark_conf: Mapping[str, str], processors: int | None = None) -> str:
    """Return ``spark.executor.extraJavaOptions``: the job's own options, then ours where it sets none.

    Args:
        spark_conf: The job's ``sparkConf``.
        processors: Processors to tell the JVM it has (``None``: leave the JVM to count them).
    """
    return _java_options(spark_conf, EXECUTOR_JAVA_OPTIONS, processors)


def local_driver_java_options(spark_conf: Mapping[str, str]) -> str:
    """Return ``spark.driver.extraJavaOptions`` for a driver sharing the machine with its executors."""
    return _java_options(spark_conf, DRIVER_JAVA_OPTIONS, None)


def with_quick_compilation(java_options: str) -> str:
    """Return ``java_options`` with C1-only compilation added, unless they say how to compile."""
    options = java_options.split()
    if not any(flag in option for option in options for flag in _COMPILATION_FLAGS):
        options.append(QUICK_COMPILATION)
    return " ".join(options)


def _java_options(spark_conf: Mapping[str, str], key: str, processors: int | None) -> str:
    """The job's ``key`` options with ours appended where neither they nor the defaults set them.

    Spark puts ``spark.{driver,executor}.defaultJavaOptions`` before the extra options on the
    JVM's command line, and with HotSpot the last ``-XX`` flag wins: a choice made there stands
    as well.
    """
    own = spark_conf.get(key, "")
    chosen = f"{spark_conf.get(key.replace('extraJavaOptions', 'defaultJavaOptions'), '')} {own}".split()
    options = own.split()
    if not any(flag in option for option in chosen for flag in _COMPILATION_FLAGS):
        options.append(QUICK_COMPILATION)
    if processors is not None and not any("ActiveProcessorCount" in option for option in chosen):
        options.append(f"-XX:ActiveProcessorCount={processors}")
    return " ".join(options)
