"""Pod templates: how a user's template merges into a pod the operator builds, and what it may not set."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from controllers.kube import child_labels
from controllers.sparkpods import executor_labels
from dynaspark.api import DeadlineJob
from mlscale.api import format_validation_error
from mlscale.podtemplate import RESERVED_LABEL_PREFIXES, PodTemplate, layer, merge_pod

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "job-driver", "labels": {"mlscale.dev/deadlinejob": "job"}},
    "spec": {
        "restartPolicy": "Never",
        "serviceAccountName": "job-spark",
        "containers": [
            {
                "name": "driver",
                "image": "app:1",
                "command": ["spark-submit"],
                "volumeMounts": [{"name": "ours", "mountPath": "/opt/ours"}],
                "ports": [{"name": "ui", "containerPort": 4040}],
            }
        ],
        "volumes": [{"name": "ours", "configMap": {"name": "job-template"}}],
    },
}


def template(**spec: Any) -> PodTemplate:
    return PodTemplate.model_validate({"metadata": {"labels": {"team": "a"}}, "spec": spec})


def test_without_a_template_the_pod_is_unchanged() -> None:
    assert merge_pod(POD, None, "driver") is POD


def test_template_fields_join_the_operators_and_never_replace_them() -> None:
    before = copy.deepcopy(POD)
    merged = merge_pod(
        POD,
        template(
            nodeSelector={"pool": "spark"},
            serviceAccountName="theirs",
            volumes=[{"name": "data", "emptyDir": {}}],
            containers=[
                {
                    "name": "driver",
                    "image": "other:2",
                    "env": [{"name": "A", "value": "1"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "ports": [{"name": "metrics", "containerPort": 9090}],
                    "securityContext": {"runAsNonRoot": True},
                },
                {"name": "sidecar", "image": "side:1"},
            ],
        ),
        "driver",
    )
    assert before == POD  # the operator's pod is not modified in place
    spec = merged["spec"]
    assert spec["nodeSelector"] == {"pool": "spark"}
    assert spec["serviceAccountName"] == "job-spark"  # the operator's field wins
    assert spec["restartPolicy"] == "Never"
    assert [v["name"] for v in spec["volumes"]] == ["ours", "data"]
    driver, sidecar = spec["containers"]
    assert driver["image"] == "app:1"
    assert driver["command"] == ["spark-submit"]
    assert driver["env"] == [{"name": "A", "value": "1"}]
    assert driver["securityContext"] == {"runAsNonRoot": True}
    assert [m["mountPath"] for m in driver["volumeMounts"]] == ["/opt/ours", "/data"]
    assert [p["name"] for p in driver["ports"]] == ["ui", "metrics"]
    assert sidecar == {"name": "sidecar", "image": "side:1"}
    assert merged["metadata"]["labels"] == {"team": "a", "mlscale.dev/deadlinejob": "job"}
    assert merged["metadata"]["name"] == "job-driver"


def test_a_container_of_another_name_is_a_sidecar_not_a_merge() -> None:
    merged = merge_pod(POD, template(containers=[{"name": "executor", "env": [{"name": "A"}]}]), "driver")
    assert [c["name"] for c in merged["spec"]["containers"]] == ["driver", "executor"]
    assert "env" not in merged["spec"]["containers"][0]


JOB: dict[str, Any] = {
    "apiVersion": "mlscale.dev/v1alpha1",
    "kind": "DeadlineJob",
    "metadata": {"name": "job"},
    "spec": {"deadline": "5m", "application": {"mainApplicationFile": "app.py"}},
}


def errors_of(driver: dict[str, Any] | None = None, executors: dict[str, Any] | None = None) -> list[str]:
    body = copy.deepcopy(JOB)
    if driver is not None:
        body["spec"]["driver"] = {"template": driver}
    if executors is not None:
        body["spec"]["executors"] = {"template": executors}
    with pytest.raises(ValidationError) as caught:
        DeadlineJob.model_validate(body)
    return format_validation_error(caught.value)


@pytest.mark.parametrize(
    ("field", "fix"),
    [
        ("resources", "spec.executors.coresMin/coresMax"),
        ("command", "Spark starts the executor"),
        ("args", "Spark starts the executor"),
        ("image", "spec.application.image"),
        ("resizePolicy", "NotRequired"),
    ],
)
def test_executor_container_fields_the_operator_sets_are_refused_with_the_fix(field: str, fix: str) -> None:
    (line,) = errors_of(executors={"spec": {"containers": [{"name": "executor", field: ["x"]}]}})
    assert line.startswith(f"spec.executors.template: spec.containers[executor].{field}: ")
    assert fix in line


def test_driver_template_conflicts_are_all_named_in_one_message() -> None:
    (line,) = errors_of(
        driver={
            "metadata": {"labels": {"mlscale.dev/deadlinejob": "other", "team": "a"}},
            "spec": {
                "restartPolicy": "Always",
                "volumes": [{"name": "executor-template", "emptyDir": {}}],
                "containers": [{"name": "driver", "resources": {"limits": {"cpu": "8"}}, "env": {"A": "1"}}],
            },
        }
    )
    assert line.startswith("spec.driver.template: ")
    assert "metadata.labels.mlscale.dev/deadlinejob: keys under mlscale.dev/" in line
    assert "spec.restartPolicy: the driver pod is never restarted" in line
    assert "spec.containers[driver].resources: the driver's CPU and memory come from spec.driver.cores" in line
    assert "spec.containers[driver].env: must be a list" in line
    assert "spec.volumes[executor-template]: the operator's volume of that name holds the executor pod template" in line
    assert "team" not in line


@pytest.mark.parametrize("containers", [{"name": "driver"}, [{"image": "x"}], ["driver"]])
def test_containers_must_be_a_list_of_named_objects(containers: Any) -> None:
    (line,) = errors_of(driver={"spec": {"containers": containers}})
    assert "spec.containers: must be a list of objects, each with a name" in line


def test_names_given_twice_and_spark_volumes_are_refused() -> None:
    (line,) = errors_of(
        executors={
            "spec": {
                "initContainers": [{"name": "fetch"}],
                "containers": [{"name": "executor", "env": []}, {"name": "fetch"}, {"name": "executor"}],
                "volumes": [{"name": "data"}, {"name": "data"}, {"name": "spark-conf-volume-exec"}],
            }
        }
    )
    assert "spec.containers[executor]: more than one container is named executor" in line
    assert "spec.containers[fetch]: more than one container is named fetch" in line
    assert "spec.volumes[data]: more than one volume is named data" in line
    assert "spec.volumes[spark-conf-volume-exec]: the operator's volume of that name holds Spark's" in line


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"serviceAccountName": "default"}, "spec.serviceAccountName: the operator binds the driver's Role"),
        ({"automountServiceAccountToken": False}, "spec.automountServiceAccountToken: the driver reads"),
    ],
)
def test_driver_accounts_that_would_spread_or_lose_its_rights_are_refused(spec: dict[str, Any], expected: str) -> None:
    (line,) = errors_of(driver={"spec": spec})
    assert expected in line


def test_a_template_of_what_the_operator_leaves_open_is_valid() -> None:
    body = copy.deepcopy(JOB)
    body["spec"]["executors"] = {
        "template": {
            "metadata": {"labels": {"team": "a"}, "annotations": {"x": "y"}},
            "spec": {
                "nodeSelector": {"pool": "spark"},
                "priorityClassName": "batch",
                "containers": [{"name": "executor", "env": [{"name": "A", "value": "1"}]}],
            },
        }
    }
    job = DeadlineJob.model_validate(body)
    assert job.spec.executors.template is not None
    assert job.spec.executors.template.spec["priorityClassName"] == "batch"


def test_every_label_the_operator_puts_on_a_pod_is_reserved() -> None:
    keys = {*child_labels("DeadlineJob", "job", "driver"), *executor_labels("job"), "spark-role"}
    assert all(key.startswith(RESERVED_LABEL_PREFIXES) for key in keys)


def test_a_layered_template_takes_the_upper_fields_and_joins_the_rest_by_name() -> None:
    base = PodTemplate.model_validate(
        {
            "metadata": {"labels": {"team": "a", "tier": "cpu"}},
            "spec": {
                "nodeSelector": {"pool": "serving"},
                "volumes": [{"name": "models", "emptyDir": {}}],
                "containers": [{"name": "server", "env": [{"name": "A", "value": "1"}], "workingDir": "/a"}],
            },
        }
    )
    over = PodTemplate.model_validate(
        {
            "metadata": {"labels": {"tier": "gpu"}},
            "spec": {
                "nodeSelector": {"pool": "gpu"},
                "volumes": [{"name": "models", "hostPath": {"path": "/m"}}, {"name": "cuda", "emptyDir": {}}],
                "containers": [{"name": "server", "env": [{"name": "B", "value": "2"}], "workingDir": "/b"}],
            },
        }
    )
    layered = layer(base, over)
    assert layered is not None
    assert layered.metadata.labels == {"team": "a", "tier": "gpu"}
    assert layered.spec["nodeSelector"] == {"pool": "gpu"}
    assert layered.spec["volumes"] == [{"name": "models", "hostPath": {"path": "/m"}}, {"name": "cuda", "emptyDir": {}}]
    (server,) = layered.spec["containers"]
    assert server["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert server["workingDir"] == "/b"
    assert layer(None, over) is over
    assert layer(base, None) is base


def test_a_layered_container_replaces_entries_with_the_same_key() -> None:
    base = PodTemplate.model_validate(
        {"spec": {"containers": [{"name": "server", "env": [{"name": "A", "value": "1"}],
                                  "volumeMounts": [{"name": "m", "mountPath": "/models"}]}]}}
    )  # fmt: skip
    over = PodTemplate.model_validate(
        {"spec": {"containers": [{"name": "server", "env": [{"name": "A", "value": "2"}],
                                  "volumeMounts": [{"name": "gpu-m", "mountPath": "/models"}]}]}}
    )  # fmt: skip
    layered = layer(base, over)
    assert layered is not None
    (server,) = layered.spec["containers"]
    assert server["env"] == [{"name": "A", "value": "2"}]
    assert server["volumeMounts"] == [{"name": "gpu-m", "mountPath": "/models"}]


def test_operator_variables_are_refused() -> None:
    (line,) = errors_of(executors={"spec": {"containers": [{"name": "executor", "env": [{"name": "MLSCALE_X"}]}]}})
    assert "spec.containers[executor].env[MLSCALE_X]: variables under MLSCALE_ are the operator's" in line


def _examples(kind: str) -> list[dict[str, Any]]:
    import yaml

    from tests.deploy.paths import REPO_ROOT

    docs = [yaml.safe_load(p.read_text()) for p in sorted((REPO_ROOT / "examples").glob("*.yaml"))]
    return [{**d, "metadata": {**d["metadata"], "namespace": "apps"}} for d in docs if d["kind"] == kind]


def test_pods_that_never_call_the_api_get_no_token_unless_their_template_asks() -> None:
    from controllers import flpods, servingpods, sparkpods
    from hyperfl.api import FederatedTraining
    from roma.api import InferenceService

    specs: list[tuple[str, dict[str, Any]]] = []
    for doc in _examples("DeadlineJob"):
        job = DeadlineJob.model_validate({**doc, "spec": {**doc["spec"], "application": {
            **doc["spec"]["application"], "image": "spark:test"}}})  # fmt: skip
        specs.append(("executor", sparkpods.executor_pod_template(job)["spec"]))
        # The driver asks the API server for its executors: its token is mounted whatever its account says.
        assert sparkpods.driver_pod(job, "apps")["spec"]["automountServiceAccountToken"] is True
    for doc in _examples("FederatedTraining"):
        training = FederatedTraining.model_validate({**doc, "spec": {**doc["spec"], "image": "engines:test"}})
        specs += [(p["metadata"]["name"], p["spec"]) for kind, p in flpods.children(training, "apps") if kind == "pods"]
    for doc in _examples("InferenceService"):
        svc = InferenceService.model_validate({**doc, "spec": {**doc["spec"], "image": "engines:test"}})
        specs += [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for _, _, d in servingpods.children(svc)
                  if d["kind"] == "Deployment"]  # fmt: skip
    assert len(specs) > 10
    for name, spec in specs:
        assert spec["automountServiceAccountToken"] is False, name

    # A sidecar that needs the API: the template's own value stands.
    template = PodTemplate.model_validate({"spec": {"automountServiceAccountToken": True}})
    pod = {"metadata": {}, "spec": {"automountServiceAccountToken": False, "containers": [{"name": "executor"}]}}
    assert merge_pod(pod, template, "executor")["spec"]["automountServiceAccountToken"] is True
