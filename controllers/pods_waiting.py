"""Pods that cannot run, for every kind: the ``PodsWaiting`` condition and what it is read from.

A pod's own status tells most causes (:func:`controllers.kube.pod_problem`: unschedulable, an
image that cannot be pulled, a missing Secret, a crashing container); a volume that cannot be
mounted only the kubelet's Warning Events (:func:`controllers.kube.pod_event_problems`); pods a
ReplicaSet could not create at all (a quota, Pod Security admission, a LimitRange) only their
Deployment's conditions (:func:`deployment_problem`). Each loop gathers what holds its pods up
with one :class:`HeldUpPods` and writes it with :func:`waiting_condition`, so a DeadlineJob, a
FederatedTraining and an InferenceService say it the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import kopf

from controllers.conditions import announce
from controllers.kube import (
    COMPONENT_LABEL,
    KubeApi,
    KubeError,
    is_being_created,
    is_live,
    pod_event_problems,
    pod_problem,
)
from mlscale.api import Condition, find_condition

log = logging.getLogger(__name__)

PODS_WAITING = "PodsWaiting"

EVENT_CHECK_S = 5.0
"""How often the Events about pods whose containers are being created are read (a failed mount)."""


class PodState(NamedTuple):
    """What a loop knows of one of its pods that may be held up."""

    role: str
    """What the pod is to the resource (``driver``, ``executor``, ``client``, ``CPU replica``, ...)."""
    problem: tuple[str, str] | None
    """Why its status says it cannot run (:func:`controllers.kube.pod_problem`)."""
    creating: bool
    """Whether its containers are still being created."""
    uid: str
    """Its uid (Events name it)."""


def pod_state(pod: Mapping[str, Any], role: str) -> PodState:
    """What the pod's status says of it."""
    uid = str((pod.get("metadata") or {}).get("uid") or "")
    return PodState(role, pod_problem(pod), is_being_created(pod), uid)


def pod_states(pods: Iterable[Mapping[str, Any]], roles: Mapping[str, str]) -> dict[str, PodState]:
    """The live pods among these whose component (``app.kubernetes.io/component``) has a role, by name.

    Args:
        pods: A resource's pods.
        roles: The role of each component's pods (``{"cpu-replica": "CPU replica", ...}``).
    """
    states = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        role = roles.get(str((meta.get("labels") or {}).get(COMPONENT_LABEL)))
        if role is not None and is_live(pod):
            states[str(meta["name"])] = pod_state(pod, role)
    return states


class Held(NamedTuple):
    """A pod of the resource's that cannot run, or a Deployment that cannot have its pods, and why."""

    role: str
    """What the pod is to the resource (:attr:`PodState.role`)."""
    name: str
    """The pod's or Deployment's name."""
    reason: str
    """The scheduler's, kubelet's or controller's reason (``Unschedulable``, ``ImagePullBackOff``, ...)."""
    detail: str
    """Their message."""
    deployment: bool = False
    """Whether it is a Deployment (whose ReplicaSet could not create the pods)."""

    @property
    def what(self) -> str:
        """For people: ``driver pod pagerank-driver``, ``CPU replica Deployment cnn-cpu``."""
        return f"{self.role} {'Deployment' if self.deployment else 'pod'} {self.name}"


def deployment_problem(deployment: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """Why a Deployment's pods cannot be had: ``(reason, message)``, or ``None``.

    ``ReplicaFailure`` (its ReplicaSet's pod creations refused: quota, Pod Security, LimitRange),
    or ``Progressing=False`` once its progress deadline passed (pods that never became ready).
    """
    for condition in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return str(condition.get("reason") or "FailedCreate"), str(condition.get("message") or "no message")
    for condition in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return "ProgressDeadlineExceeded", str(condition.get("message") or "no message")
    return None


class HeldUpPods:
    """One resource's view of its pods that cannot run, kept between its loop's periods.

    Args:
        api: The Kubernetes client.
        namespace: The pods' namespace.
        owner: The resource, for logs (``namespace/name``).
    """

    def __init__(self, api: KubeApi, namespace: str, owner: str) -> None:
        self.api = api
        self.namespace = namespace
        self.owner = owner
        # What the latest Events said of each pod whose containers are being created, and when to ask again.
        self.event_problems: dict[str, tuple[str, str]] = {}
        self.next_event_check_s = 0.0
        self.events_refused = False

    async def held_up(self, pods: Mapping[str, PodState]) -> dict[str, Held]:
        """The pods that cannot run, by name.

        Args:
            pods: By name: what its status says (:func:`pod_state`). For a pod whose containers
                are being created with no problem of its own, the kubelet's recent Warning Events
                about it tell (a volume that cannot be mounted shows nowhere else): one LIST for
                all of them, at most every :data:`EVENT_CHECK_S`.
        """
        asked = {state.uid: name for name, state in pods.items() if state.problem is None and state.creating}
        asked.pop("", None)  # a pod without a uid yet is no pod an Event can be about
        now_s = time.monotonic()
        if not asked:
            self.event_problems = {}
        elif now_s >= self.next_event_check_s:
            self.next_event_check_s = now_s + EVENT_CHECK_S
            try:
                self.event_problems = await pod_event_problems(self.api, self.namespace, asked, time.time())
            except KubeError as exc:
                if not self.events_refused:
                    log.info("%s: cannot read the Events about its pods: %s", self.owner, exc)
                self.events_refused = True
        found = {name: state.problem for name, state in pods.items() if state.problem is not None}
        found.update({name: p for name, p in self.event_problems.items() if name in asked.values()})
        return {name: Held(pods[name].role, name, reason, detail) for name, (reason, detail) in found.items()}


def _family(reason: str) -> str:
    """Reasons the kubelet alternates between for one cause (a pull and its back-off) as one."""
    return "ImagePull" if reason in ("ErrImagePull", "ImagePullBackOff") else reason


def waiting_condition(
    body: kopf.Body,
    conditions: list[Condition],
    waiting: Mapping[str, Held],
    *,
    cleared: tuple[str, str],
    consequence: str | Mapping[str, str],
    fix: str | Mapping[str, str],
    now: dt.datetime,
    generation: int | None,
) -> list[Condition]:
    """``PodsWaiting``: ``True`` while something of the resource cannot run (a Warning Event when it turns so).

    The first held by name is named, with how many more there are; another Warning Event when
    what holds it up changes (a pull and its back-off are one cause), a Normal one when it clears.

    Args:
        body: The resource the Events are posted about.
        conditions: Its conditions now.
        waiting: What is held up, by pod or Deployment name (:meth:`HeldUpPods.held_up`).
        cleared: Reason and message once nothing is held up.
        consequence: What waiting costs the user (``The deadline runs meanwhile``), or that by role.
        fix: Where in the spec the cause may be fixed (``spec.driver.template``), or that by role.
        now: When the condition changes, if it does.
        generation: The spec's generation acted on.
    """
    if not waiting:
        reason, message = cleared
        return announce(
            body, conditions, PODS_WAITING, "False", reason=reason, message=message, now=now, generation=generation
        )
    first = waiting[min(waiting)]
    what, reason, detail = first.what, first.reason, first.detail.rstrip(". ")
    where = fix if isinstance(fix, str) else fix.get(first.role, "the spec")
    cost = consequence if isinstance(consequence, str) else consequence.get(first.role, "It waits meanwhile")
    others = len(waiting) - 1
    more = f" {others} more {'is' if others == 1 else 'are'} held up too." if others else ""
    message = (
        f"The {what} is held up: {reason}: {detail}. {cost}; fix the cause (the cluster's capacity, "
        f"the image, {where}).{more}"
    )
    previous = find_condition(conditions, PODS_WAITING)
    if (
        previous is not None
        and previous.status == "True"
        and not (_family(previous.reason) == _family(reason) and previous.message.startswith(f"The {what} "))
    ):
        kopf.warn(body, reason=PODS_WAITING, message=message)  # still held, by something else now
    return announce(
        body, conditions, PODS_WAITING, "True", reason=reason, message=message, now=now, generation=generation
    )


__all__ = [
    "EVENT_CHECK_S",
    "PODS_WAITING",
    "Held",
    "HeldUpPods",
    "PodState",
    "deployment_problem",
    "pod_state",
    "pod_states",
    "waiting_condition",
]
