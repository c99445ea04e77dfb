"""The "restricted" Pod Security Standard, checked on a pod spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Pod Security Standards, "restricted" profile: the volume types it allows.
RESTRICTED_VOLUME_TYPES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)


def pod_security_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """List how a pod spec breaks the "restricted" Pod Security Standard or our own rules.

    Our own rules on top of the standard: a read-only root filesystem and a writable emptyDir
    mounted at /tmp in every container.
    """
    problems: list[str] = []
    pod_sc = pod_spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"pod sets {field}")
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    for name, volume in volumes.items():
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {name} has a type not allowed by 'restricted': {sorted(kinds)}")
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append("pod seccompProfile is Unconfined")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runs as user 0")
    if pod_sc.get("runAsNonRoot") is False:
        problems.append("pod sets runAsNonRoot: false")
    containers = list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or [])
    for container in containers:
        name = container["name"]
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"container {name} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name} does not set allowPrivilegeEscalation: false")
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problems.append(f"container {name} does not set runAsNonRoot: true (pod or container)")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"container {name} runs as user 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"container {name} has seccompProfile {seccomp!r}, not RuntimeDefault/Localhost")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"container {name} does not drop ALL capabilities")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"container {name} adds capabilities {capabilities['add']}")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            problems.append(f"container {name} uses a hostPort")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"container {name} does not set readOnlyRootFilesystem: true")
        tmp_mounts = [m for m in container.get("volumeMounts") or [] if m.get("mountPath") == "/tmp"]
        if not tmp_mounts or "emptyDir" not in volumes.get(tmp_mounts[0]["name"], {}):
            problems.append(f"container {name} has no emptyDir mounted at /tmp")
    return problems
