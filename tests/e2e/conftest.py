"""End-to-end tests against a real cluster: they run only when KUBECONFIG names one."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.e2e.kube import NAMESPACE, ROOT, kubectl

REASON = "tests/e2e needs a real cluster: set KUBECONFIG to its kubeconfig (none is reachable here)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("KUBECONFIG") and shutil.which("kubectl"):
        return
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=REASON))


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    """The CRDs applied and the tests' namespace made (deleted after the module)."""
    kubectl("apply", "-k", str(ROOT / "crds"))
    kubectl("create", "namespace", NAMESPACE, check=False)
    yield NAMESPACE
    kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
