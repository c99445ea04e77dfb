"""Refusals of a child that only a change of spec can fix, for every kind.

The API server refuses a child for what it is when it is invalid (400/422), or when a namespace
policy refuses a pod (403): Pod Security admission (``violates PodSecurity``) or a LimitRange.
Retrying with backoff cannot help there, so the create handlers turn such a refusal into
``Submitted=False``, reason ``ChildRejected``, with the server's message and what to change in
the spec, and wait for the spec to change. A 403 from RBAC or a full quota can clear without a
change of spec: kopf retries those with backoff.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import kopf

from controllers import admission
from controllers.kube import KubeError
from mlscale.api import Condition

REJECTED = "ChildRejected"


class Fixes(NamedTuple):
    """Where a kind's spec is changed to have its pods accepted (for the advice)."""

    kind: str
    """The resource's kind (``DeadlineJob``)."""
    templates: str
    """Its pod templates (``spec.driver.template and spec.executors.template``)."""
    sizes: str
    """The fields that size its pods (what a LimitRange bounds)."""


class ChildRejectedError(KubeError):
    """The API server refused a child for what it is: the spec must change, retrying cannot help.

    A :class:`~controllers.kube.KubeError` still, so a loop that recreates a vanished child
    handles it as any refusal (it logs it and tries again next period).
    """

    def __init__(self, child: str, refusal: KubeError, fixes: Fixes, *, policy: str | None = None) -> None:
        """Name the child (kind and name), keep the API server's refusal and the policy behind it."""
        super().__init__(refusal.status, refusal.reason, refusal.message)
        self.child = child
        self.fixes = fixes
        self.policy = policy

    def advice(self) -> str:
        """What the user changes to have the child accepted."""
        fixes = self.fixes
        retry = (
            "The operator tries again when the spec changes; after the namespace's policy changes instead, "
            f"annotate the {fixes.kind} to have it try again (e.g. retry=<time>: a key outside mlscale.dev/, "
            "whose annotations are the operator's own)"
        )
        if self.policy == "ResourceQuota":
            return (
                "The namespace's ResourceQuota requires every container to state the resources it names "
                f"(kubectl describe resourcequota): give the containers you add in {fixes.templates} their "
                f"requests and limits. {retry}"
            )
        if self.policy == "LimitRange":
            return (
                "The namespace's LimitRange does not allow the pod's CPU or memory (kubectl describe limitrange): "
                f"set {fixes.sizes} within it. {retry}"
            )
        if self.policy == "PodSecurity":
            return (
                "Give the pods the securityContext the namespace's Pod Security level asks for in "
                f"{fixes.templates} (for 'restricted': pod runAsNonRoot: true and seccompProfile type "
                f"RuntimeDefault; container allowPrivilegeEscalation: false and capabilities drop [ALL]). {retry}"
            )
        return (
            f"Fix what the API server names in {fixes.templates} (the fields the pods take as they are); "
            "the operator tries again when the spec changes"
        )

    def __str__(self) -> str:
        """The refusal, the child it refused and the fix (what a loop's log shows)."""
        return self.sentence()

    def sentence(self) -> str:
        """The refusal and its fix, for the ``Submitted`` condition and the Event."""
        return f"the API server refused {self.child}: {self.message}. {self.advice()}"


# How the LimitRanger admission plugin words a refusal ("maximum cpu usage per Container is 2,
# but limit is 4"; "memory max limit to request ratio per Pod is 2, but provided ratio is 3").
_LIMIT_RANGE = re.compile(r"\b(usage|ratio) per (Container|Pod) is\b")


def rejection(exc: KubeError, child: str, fixes: Fixes, *, generated: str | None = None) -> ChildRejectedError | None:
    """The refusal as a :class:`ChildRejectedError` when the spec must change; ``None`` when a retry may help.

    Args:
        exc: The API server's refusal.
        child: What was refused (kind and name), for people.
        fixes: Where the kind's spec is changed.
        generated: The ``generateName`` of the object refused: the name the server made of it
            is written with ``xxxxx`` for its random end, so the same refusal reads the same
            each time (one Event, not one per try).
    """
    if generated:
        pattern = re.escape(generated) + r"[a-z0-9]{5}\b"
        exc = KubeError(exc.status, exc.reason, re.sub(pattern, f"{generated}xxxxx", exc.message))
    if exc.status in (400, 422):
        return ChildRejectedError(child, exc, fixes)
    if exc.status == 403 and "violates PodSecurity" in exc.message:
        return ChildRejectedError(child, exc, fixes, policy="PodSecurity")
    if exc.status == 403 and _LIMIT_RANGE.search(exc.message):
        return ChildRejectedError(child, exc, fixes, policy="LimitRange")
    if exc.status == 403 and "failed quota" in exc.message and "must specify" in exc.message:
        return ChildRejectedError(child, exc, fixes, policy="ResourceQuota")
    return None  # e.g. 403 from RBAC or a full quota: either can clear without a change of spec


@contextlib.contextmanager
def refusals_named(child: str, fixes: Fixes, *, generated: str | None = None) -> Iterator[None]:
    """Turn the API server's refusal of ``child`` into a :class:`ChildRejectedError` where the spec must change.

    ``generated``: the refused object's ``generateName`` (see :func:`rejection`).
    """
    try:
        yield
    except ChildRejectedError:
        raise
    except KubeError as exc:
        rejected = rejection(exc, child, fixes, generated=generated)
        if rejected is not None:
            raise rejected from exc
        raise


def report_rejection(
    body: kopf.Body,
    patch: kopf.Patch,
    conditions: list[Condition],
    refusal: ChildRejectedError,
    *,
    generation: int | None,
    now: dt.datetime,
    after: str = "",
) -> str:
    """Set ``Submitted=False``, reason ``ChildRejected``: the refusal, its fix, then ``after``; return the message."""
    message = refusal.sentence() + (f". {after}" if after else "")
    admission.set_submitted(
        body, patch, conditions, submitted=False, reason=REJECTED, message=message, generation=generation, now=now
    )
    return message


def pod_of(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """A pod as a Deployment's ReplicaSet would create it from the template (for a dry run)."""
    template = deployment["spec"]["template"]
    metadata = {k: v for k, v in (template.get("metadata") or {}).items() if k in ("labels", "annotations")}
    metadata["generateName"] = f"{deployment['metadata']['name']}-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def is_quota(exc: KubeError) -> bool:
    """Whether a refusal is a ResourceQuota's (``exceeded quota``): it clears as other pods end."""
    return exc.status == 403 and "exceeded quota" in exc.message


__all__ = ["REJECTED", "ChildRejectedError", "Fixes", "pod_of", "refusals_named", "rejection", "report_rejection"]
