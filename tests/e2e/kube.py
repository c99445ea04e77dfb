"""kubectl as the end-to-end tests call it: the cluster KUBECONFIG names."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "mlscale-e2e"


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=120, check=check)


def kubectl_apply(namespace: str, doc: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``kubectl apply`` of one document given as text."""
    command = ["kubectl", "apply", "-n", namespace, *args, "-f", "-"]
    return subprocess.run(command, input=doc, capture_output=True, text=True, timeout=60, check=check)


def status(kind: str, name: str, namespace: str) -> dict[str, Any]:
    """The resource's status as the operator wrote it."""
    got = json.loads(kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)
    found: dict[str, Any] = got.get("status") or {}
    return found
