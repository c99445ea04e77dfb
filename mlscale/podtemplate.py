"""Pod templates: the part of a pod a user adds to one the operator builds (cluster only).

A template is a core/v1 ``PodTemplateSpec`` in part: ``metadata.labels`` and
``metadata.annotations``, and a ``spec`` whose fields (volumes, node selector, tolerations,
affinity, security context, image pull secrets, init containers, sidecars, ...) the pod takes
as they are. The container the operator runs is named by the resource (``driver``, ``executor``);
the template's container of that name adds its ``env``, ``envFrom``, ``volumeMounts``,
``securityContext`` and other fields to it. What the operator decides itself (image, command,
resources, restart policy, its own labels and volumes) a template may not set: validation says
which field and where its value comes from, before anything is created.

The API server validates the rest of the pod when the operator creates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from mlscale.api import ApiModel

_JOINED = ("env", "envFrom", "volumeMounts", "ports")
"""Container fields that are lists the template's entries join (the operator's first)."""
OPERATOR_ENV_PREFIX = "MLSCALE_"
"""Environment variables the operator sets in its containers (a template's would override them)."""
USER_DEFAULTED_POD_FIELDS = ("automountServiceAccountToken",)
"""Pod fields the operator sets as a default that a template's value replaces.

Pods that do not call the Kubernetes API (executors, the federated coordinator and clients, the
router and model servers) get no ServiceAccount token unless their template asks for one (a
sidecar that needs it, say)."""
NO_API_TOKEN: dict[str, Any] = {"automountServiceAccountToken": False}
"""What the operator adds to the spec of a pod that does not call the Kubernetes API."""
RESERVED_LABEL_PREFIXES = ("mlscale.dev/", "app.kubernetes.io/", "spark-")
"""Label keys the operator and Spark set on the pods they create (selection depends on them)."""


class PodTemplateMetadata(ApiModel):
    """Labels and annotations added to the pod."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to the pod. Keys under ``mlscale.dev/``, ``app.kubernetes.io/`` and ``spark-``
    are the operator's and Spark's."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations added to the pod."""


class PodTemplate(ApiModel):
    """Fields added to a pod the operator builds, as in a core/v1 PodTemplateSpec (cluster only)."""

    metadata: PodTemplateMetadata = Field(default_factory=PodTemplateMetadata)
    """Labels and annotations added to the pod."""
    spec: dict[str, Any] = Field(default_factory=dict)
    """A core/v1 PodSpec in part: its fields are added to the pod's."""


def template_problems(
    template: PodTemplate,
    *,
    container: str,
    owned_container_fields: Mapping[str, str],
    owned_pod_fields: Mapping[str, str],
    reserved_volumes: Mapping[str, str],
) -> list[str]:
    """What in a template conflicts with the pod the operator builds, one line per field.

    Args:
        template: The user's template.
        container: Name of the operator's container in the pod.
        owned_container_fields: Fields of that container the operator sets, each with where
            its value comes from (the fix).
        owned_pod_fields: Pod spec fields the operator sets, each with the fix.
        reserved_volumes: Volume names the operator uses, each with what it holds.

    Returns:
        Lines like ``spec.containers[executor].resources: ...``; empty when the template fits.
    """
    problems = [
        f"metadata.labels.{key}: keys under {', '.join(RESERVED_LABEL_PREFIXES)} are the operator's "
        "and Spark's; choose another key"
        for key in template.metadata.labels
        if key.startswith(RESERVED_LABEL_PREFIXES)
    ]
    spec = template.spec
    for field, fix in owned_pod_fields.items():
        if field in spec:
            problems.append(f"spec.{field}: {fix}")
    shapeless = [
        f"spec.{field}: must be a list of objects, each with a name"
        for field in ("containers", "initContainers", "volumes")
        if not _named_objects(spec.get(field, []))
    ]
    if shapeless:
        return problems + shapeless
    names = [c["name"] for field in ("initContainers", "containers") for c in spec.get(field, [])]
    problems += [
        f"spec.containers[{name}]: more than one container is named {name}; name each once"
        for name in sorted({n for n in names if names.count(n) > 1})
    ]
    volumes = [v["name"] for v in spec.get("volumes", [])]
    problems += [
        f"spec.volumes[{name}]: more than one volume is named {name}; name each once"
        for name in sorted({n for n in volumes if volumes.count(n) > 1})
    ]
    for item in spec.get("containers", []):
        if item["name"] != container:
            continue
        for field, fix in owned_container_fields.items():
            if field in item:
                problems.append(f"spec.containers[{container}].{field}: {fix}")
        for key in _JOINED:
            if not isinstance(item.get(key, []), list):
                problems.append(f"spec.containers[{container}].{key}: must be a list")
        problems += [
            f"spec.containers[{container}].env[{name}]: variables under {OPERATOR_ENV_PREFIX} are the operator's; "
            "choose another name"
            for name in _env_names(item)
            if name.startswith(OPERATOR_ENV_PREFIX)
        ]
    problems += [
        f"spec.volumes[{v['name']}]: the operator's volume of that name holds {reserved_volumes[v['name']]}; "
        "rename yours"
        for v in spec.get("volumes", [])
        if v["name"] in reserved_volumes
    ]
    return problems


def _env_names(container: Mapping[str, Any]) -> list[str]:
    env = container.get("env", [])
    return [str(e.get("name")) for e in env if isinstance(e, dict)] if isinstance(env, list) else []


def _named_objects(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items)


def merge_pod(pod: dict[str, Any], template: PodTemplate | None, container: str) -> dict[str, Any]:
    """The pod with the template's fields added; the operator's own win (validation refused conflicts).

    Args:
        pod: The pod (or pod template) the operator built: ``metadata`` and ``spec`` with
            ``container`` in ``spec.containers``.
        template: The user's template, or ``None``.
        container: Name of the operator's container.

    Returns:
        A new pod: the template's pod fields, then the operator's (but the template's own of
        :data:`USER_DEFAULTED_POD_FIELDS`, where the operator only sets a default); the template's volumes and
        labels besides the operator's; the template's container of that name merged into the
        operator's (lists such as ``volumeMounts`` and ``ports`` joined, the operator's first)
        and its other containers after it. ``pod`` is returned as it is without a template.
    """
    if template is None:
        return pod
    ours = pod["spec"]
    spec: dict[str, Any] = {**template.spec, **{k: v for k, v in ours.items() if k not in ("containers", "volumes")}}
    spec.update({k: template.spec[k] for k in USER_DEFAULTED_POD_FIELDS if k in template.spec})
    volumes = [*ours.get("volumes", []), *template.spec.get("volumes", [])]
    if volumes:
        spec["volumes"] = volumes
    theirs = {c["name"]: c for c in template.spec.get("containers", [])}
    containers = []
    for own in ours["containers"]:
        extra = theirs.pop(own["name"], {}) if own["name"] == container else {}
        merged = {**extra, **own}
        for key in _JOINED:
            joined = [*own.get(key, []), *extra.get(key, [])]
            if joined:
                merged[key] = joined
        containers.append(merged)
    spec["containers"] = [*containers, *theirs.values()]
    metadata = dict(pod.get("metadata", {}))
    metadata["labels"] = {**template.metadata.labels, **metadata.get("labels", {})}
    annotations = {**template.metadata.annotations, **metadata.get("annotations", {})}
    if annotations:
        metadata["annotations"] = annotations
    return {**pod, "metadata": metadata, "spec": spec}


def layer(base: PodTemplate | None, over: PodTemplate | None) -> PodTemplate | None:
    """One template of two, ``over``'s fields replacing ``base``'s (e.g. GPU replicas over all replicas).

    Labels, annotations and pod fields: ``over``'s win. Volumes, containers and init containers
    are joined by name; a container in both is merged, ``over``'s fields winning and its
    ``env``, ``volumeMounts`` and ``ports`` replacing ``base``'s entries of the same name, mount
    path or port (``envFrom`` appended). The result is validated as ``over`` is.
    """
    if base is None or over is None:
        return over if base is None else base
    spec: dict[str, Any] = {**base.spec, **over.spec}
    for field in ("volumes", "containers", "initContainers"):
        joined = {item["name"]: item for item in base.spec.get(field, [])}
        for item in over.spec.get(field, []):
            below = joined.get(item["name"])
            if below is None or field == "volumes":
                joined[item["name"]] = item
                continue
            merged = {**below, **item}
            for key in _JOINED:
                if key in below or key in item:
                    merged[key] = _join_keyed(below.get(key, []), item.get(key, []), _LIST_KEYS[key])
            joined[item["name"]] = merged
        if joined:
            spec[field] = list(joined.values())
    metadata = PodTemplateMetadata(
        labels={**base.metadata.labels, **over.metadata.labels},
        annotations={**base.metadata.annotations, **over.metadata.annotations},
    )
    # Validated as the upper template is: names given twice across the two, fields the operator owns.
    return type(over).model_validate({"metadata": metadata.model_dump(), "spec": spec})


_LIST_KEYS = {"env": "name", "envFrom": None, "volumeMounts": "mountPath", "ports": "containerPort"}
"""What identifies an entry of each joined list (an upper entry replaces a lower one with the same)."""


def _join_keyed(below: list[Any], above: list[Any], key: str | None) -> list[Any]:
    if key is None:
        return [*below, *above]
    replaced = {entry.get(key) for entry in above if isinstance(entry, dict)}
    return [*(e for e in below if not (isinstance(e, dict) and e.get(key) in replaced)), *above]
