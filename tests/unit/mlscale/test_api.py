"""Validation a user meets: every bad field is named with what is allowed."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from dynaspark.api import DeadlineJob
from hyperfl.api import FederatedTraining
from mlscale.api import ADMITTED, find_condition, format_validation_error, set_condition
from roma.api import InferenceService

JOB: dict[str, Any] = {
    "apiVersion": "mlscale.dev/v1alpha1",
    "kind": "DeadlineJob",
    "metadata": {"name": "sort"},
    "spec": {"deadline": "2m", "application": {"mainApplicationFile": "sort.py"}},
}
FL: dict[str, Any] = {
    "apiVersion": "mlscale.dev/v1alpha1",
    "kind": "FederatedTraining",
    "metadata": {"name": "digits"},
    "spec": {"model": {"builder": "pkg.mod:fn"}, "target": {"value": 0.9}},
}
SVC: dict[str, Any] = {
    "apiVersion": "mlscale.dev/v1alpha1",
    "kind": "InferenceService",
    "metadata": {"name": "cnn"},
    "spec": {"model": {"name": "cnn", "builder": "pkg.mod:fn"}, "slo": {"latencyMs": 50}},
}


def errors(model: Any, doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(doc)
    return format_validation_error(info.value)


def with_spec(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["spec"].update(changes)
    return doc


def test_defaults_fill_a_minimal_deadline_job() -> None:
    job = DeadlineJob.model_validate(JOB)
    assert job.spec.deadline == 120
    assert job.spec.executors.instances == 2
    assert job.spec.control.alpha == pytest.approx(0.95)
    assert job.spec.executors.memory == 2**30


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"deadline": "0s"}, "spec.deadline: must be positive"),
        ({"deadline": -60}, "spec.deadline: must be positive"),
        # Spark refuses an executor under 450 MiB when it starts; admission says so before.
        ({"executors": {"memory": "1"}}, "spec.executors.memory: Spark needs at least 450Mi per executor"),
        ({"executors": {"memory": "449Mi"}}, "got 449Mi: raise it"),
        # The kernel takes no quota under 1 ms per 100 ms: a smaller coresMin could not be enforced.
        ({"executors": {"coresMin": "5m"}}, "spec.executors: coresMin (0.005) must be at least 10m"),
        ({"executors": []}, "spec.executors: must be a mapping of fields (got a list)"),
        # The driver's heap is its pod's memory less Spark's overhead (384Mi at least).
        ({"driver": {"memory": "800Mi"}}, "a heap of 416Mi after Spark's memory overhead"),
        ({"driver": {"memory": "800Mi"}}, "raise driver.memory to at least 896Mi"),
        ({"deadline": "soon"}, "spec.deadline: 'soon' is not a duration"),
        ({"deadline": 1.5}, "spec.deadline: a duration must be an integer or a quoted string"),
        (
            {"executors": {"coresMin": "2", "coresMax": "1"}},
            "spec.executors: coresMin (2) must not exceed coresMax (1)",
        ),
        ({"executors": {"coresMax": "lots"}}, "spec.executors.coresMax: 'lots' is not a CPU quantity"),
        ({"executors": {"instances": 0}}, "spec.executors.instances: Input should be greater than or equal to 1"),
        ({"control": {"periodSeconds": 0}}, "spec.control.periodSeconds: Input should be greater than 0"),
        ({"application": {"mainApplicationFile": "a.jar", "type": "Java"}}, "mainClass is required"),
        # spark-submit would run a Python application's jar (or README) as a jar, and a jar job's .py as Python.
        (
            {"application": {"mainApplicationFile": "README.md"}},
            "spec.application: mainApplicationFile 'README.md' is not a .py file, and spark-submit would run it",
        ),
        # spark-submit looks at the end of the text: with a query string it runs the file as a jar.
        (
            {"application": {"mainApplicationFile": "s3a://bucket/app.py?versionId=3"}},
            "mainApplicationFile 's3a://bucket/app.py?versionId=3' is not a .py file",
        ),
        (
            {"application": {"mainApplicationFile": "job.py", "type": "Scala", "mainClass": "Main"}},
            "spec.application: mainApplicationFile 'job.py' is a Python file: set type Python, or name a jar",
        ),
        ({"executor": {}}, "spec.executor: unknown field"),
    ],
)
def test_deadline_job_errors_name_the_field(change: dict[str, Any], expected: str) -> None:
    lines = errors(DeadlineJob, with_spec(JOB, **change))
    assert any(expected in line for line in lines), lines


def test_a_driver_heap_set_larger_than_its_pod_is_refused() -> None:
    doc = with_spec(JOB, driver={"memory": "1Gi"})
    doc["spec"]["application"]["sparkConf"] = {"spark.driver.memory": "2g"}
    (line,) = errors(DeadlineJob, doc)
    assert line.startswith("spec: application.sparkConf spark.driver.memory (2g) is the driver JVM's heap alone")
    doc["spec"]["application"]["sparkConf"] = {"spark.driver.memory": "600m"}
    assert DeadlineJob.model_validate(doc).spec.driver_heap is None  # the job's own, left as it is


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"spark.executor.cores": "8"}, "spark.executor.cores: an executor's task slots come from spec.executors"),
        ({"spark.dynamicAllocation.enabled": "true"}, "the law sizes a fixed set of executors"),
        ({"spark.kubernetes.container.image": "x"}, "it comes from spec.application.image"),
        ({"executor.cores": "8"}, "executor.cores: not a Spark property (Spark ignores keys outside spark.*)"),
    ],
)
def test_spark_conf_the_operator_would_override_is_refused(conf: dict[str, str], expected: str) -> None:
    doc = copy.deepcopy(JOB)
    doc["spec"]["application"]["sparkConf"] = {"spark.sql.shuffle.partitions": "8", **conf}
    (line,) = errors(DeadlineJob, doc)
    assert line.startswith("spec.application.sparkConf: ")
    assert expected in line
    assert line.endswith("and the operator sets it over yours; remove it") or "not a Spark property" in line


def test_checks_added_since_a_spec_was_admitted_do_not_refuse_it() -> None:
    # Each of these was accepted by an earlier release; an operator upgrade must not stop the
    # resources it runs (the next edit is checked in full).
    job = with_spec(JOB, driver={"memory": "512Mi"}, executors={"coresMin": "5m", "memory": "400Mi"})
    job["spec"]["application"]["sparkConf"] = {"spark.executor.cores": "4"}
    svc = with_spec(SVC, slo={"latencyMs": 10}, batching={"maxDelayMs": 20})
    training = with_spec(FL, data={"partition": {"type": "iid", "alpha": 0.3}})
    for model, doc in ((DeadlineJob, job), (InferenceService, svc), (FederatedTraining, training)):
        assert errors(model, doc), model.__name__  # refused as a new spec
        model.model_validate(doc, context=ADMITTED)
    # What no release accepted stays refused.
    broken = with_spec(JOB, executors={"coresMin": "2", "coresMax": "1"})
    with pytest.raises(ValidationError, match="must not exceed coresMax"):
        DeadlineJob.model_validate(broken, context=ADMITTED)


def test_missing_required_field_is_named() -> None:
    doc = copy.deepcopy(JOB)
    del doc["spec"]["deadline"]
    assert errors(DeadlineJob, doc) == ["spec.deadline: required field is missing"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"target": {"value": 1.2}}, "spec.target: value must be in (0, 1] for accuracy"),
        ({"target": {"value": 0}}, "spec.target: value must be in (0, 1]"),
        ({"data": {"partition": {"type": "skewed"}}}, "spec.data.partition.type: Input should be 'iid' or 'dirichlet'"),
        (
            {"training": {"localEpochs": {"min": 4, "max": 2}}},
            "spec.training.localEpochs: min (4) must not exceed max (2): raise max or lower min",
        ),
        (
            {"rounds": {"clientsPerRound": 20}, "data": {"clients": 10}},
            "spec: rounds.clientsPerRound (20) must not exceed data.clients (10): lower rounds.clientsPerRound",
        ),
        ({"model": {"builder": "not a builder"}}, "spec.model.builder: must be module:function"),
        # Set for an iid split, alpha would be ignored.
        (
            {"data": {"partition": {"type": "iid", "alpha": 0.1}}},
            "spec.data.partition: alpha sets the skew of a dirichlet partition: remove it, or set type: dirichlet",
        ),
        ({"deadline": "0s"}, "spec.deadline: must be positive"),
    ],
)
def test_federated_training_errors_name_the_field(change: dict[str, Any], expected: str) -> None:
    lines = errors(FederatedTraining, with_spec(FL, **change))
    assert any(expected in line for line in lines), lines


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"slo": {"latencyMs": 50, "percentile": 100}}, "spec.slo.percentile: Input should be less than 100"),
        ({"slo": {"latencyMs": -1}}, "spec.slo.latencyMs: Input should be greater than 0"),
        ({"replicas": {"min": 3, "max": 2}}, "spec.replicas: min (3) must not exceed max (2): raise max or lower min"),
        ({"cpu": {"coresMin": "1m"}}, "spec.cpu: coresMin (0.001) must be at least 10m"),
        ({"model": {"name": "a/b", "builder": "a:b"}}, "spec.model.name: must be lowercase letters, digits, '-', '_'"),
        ({"cpu": {"coresMin": "3", "coresMax": "2"}}, "spec.cpu: coresMin (3) must not exceed coresMax (2)"),
        ({"model": {"name": "cnn"}}, "spec.model: set exactly one of builder"),
        (
            {"slo": {"latencyMs": 10}, "batching": {"maxDelayMs": 50}},
            "spec: batching.maxDelayMs (50) is not below slo.latencyMs (10): a request that waits alone",
        ),
        ({"model": {"name": "cnn", "builder": "a:b", "uri": "/m"}}, "spec.model: set exactly one of builder"),
    ],
)
def test_inference_service_errors_name_the_field(change: dict[str, Any], expected: str) -> None:
    lines = errors(InferenceService, with_spec(SVC, **change))
    assert any(expected in line for line in lines), lines


@pytest.mark.parametrize(
    ("cores", "dumped"),
    [(2.0, 2), (0.5, "500m"), (1.25, "1250m"), (0.005, "5m"), (0.9999999999999, "0.9999999999999"), (1e-13, None)],
)
@pytest.mark.parametrize("deadline", [300.0, 0.1, 86400.5, 1e-7, 0.1 + 0.2])
def test_a_spec_dumped_as_json_reads_back_as_the_same_values(cores: float, dumped: Any, deadline: float) -> None:
    # A spec handed on as JSON (the FederatedTraining coordinator reads its resource so) must
    # validate again, to the same numbers: the API's int-or-string types refuse floats.
    svc = InferenceService.model_validate(SVC)
    svc.spec.cpu.cores_min = cores
    if dumped is not None:
        assert svc.spec.model_dump(mode="json", by_alias=True)["cpu"]["coresMin"] == dumped
    again = InferenceService.model_validate_json(svc.model_dump_json(by_alias=True), context=ADMITTED)
    assert again.spec.cpu.cores_min == cores
    training = FederatedTraining.model_validate(FL)
    training.spec.deadline = deadline
    read = FederatedTraining.model_validate_json(training.model_dump_json(by_alias=True), context=ADMITTED)
    assert read.spec.deadline == deadline


def test_cpu_quantities_accept_kubernetes_forms() -> None:
    svc = InferenceService.model_validate(with_spec(SVC, cpu={"coresMin": "250m", "coresMax": 2}))
    assert (svc.spec.cpu.cores_min, svc.spec.cpu.cores_max) == (0.25, 2.0)


def test_a_bad_name_is_described_in_words() -> None:
    doc = copy.deepcopy(JOB)
    doc["metadata"]["name"] = "Bad_Name"
    assert errors(DeadlineJob, doc) == [
        "metadata.name: must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit "
        "(got 'Bad_Name')"
    ]


def test_an_empty_spec_is_named_as_empty() -> None:
    doc = copy.deepcopy(JOB)
    doc["spec"] = None
    assert errors(DeadlineJob, doc) == ["spec: must be a mapping of fields (it is empty)"]


def test_wrong_kind_or_api_version_is_refused() -> None:
    doc = copy.deepcopy(JOB)
    doc["apiVersion"] = "mlscale.dev/v1"
    assert any(line.startswith("apiVersion:") for line in errors(DeadlineJob, doc))


def test_condition_transition_time_moves_only_with_status() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    t1 = t0 + dt.timedelta(minutes=1)
    conds = set_condition([], "Accepted", "True", "Valid", "ok", now=t0)
    conds = set_condition(conds, "Accepted", "True", "Valid", "still ok", now=t1)
    cond = find_condition(conds, "Accepted")
    assert cond is not None
    assert cond.last_transition_time == t0
    assert cond.message == "still ok"
    conds = set_condition(conds, "Accepted", "False", "InvalidSpec", "bad", now=t1)
    cond = find_condition(conds, "Accepted")
    assert cond is not None
    assert cond.last_transition_time == t1
    assert len(conds) == 1
