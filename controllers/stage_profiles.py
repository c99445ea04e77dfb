"""Stage profiles in a cluster: one ConfigMap per application, kept between runs.

The first run of an application records its stage profile; later runs of the same
application plan with it. "The same application" is the same image, application file, entry
class and arguments: the file's contents live in the image, so the image stands for them.
The ConfigMap is labelled as mlscale's but owned by no DeadlineJob, so it outlives the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from controllers.kube import MANAGED_BY, KubeApi, KubeError, core_path
from dynaspark.api import DeadlineJob
from dynaspark.profile import ApplicationProfile

log = logging.getLogger(__name__)

PROFILE_KEY = "profile.json"
PROFILE_COMPONENT = "stage-profile"


def profile_configmap_name(job: DeadlineJob) -> str:
    """The ConfigMap name of the job's application profile (a DNS-1123 name, stable per application)."""
    app = job.spec.application
    digest = hashlib.sha256(
        json.dumps([app.image or "", app.main_application_file, app.main_class or "", list(app.arguments)]).encode()
    ).hexdigest()[:16]
    stem = app.main_application_file.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    stem = "".join(c if c.isalnum() else "-" for c in stem).strip("-")[:30] or "app"
    return f"mlscale-profile-{stem}-{digest}"


async def load_profile(api: KubeApi, namespace: str, name: str) -> ApplicationProfile | None:
    """The stored profile, or ``None`` when there is none or it cannot be read."""
    try:
        configmap = await api.get(core_path("configmaps", namespace, name))
    except KubeError as exc:
        log.warning("cannot read stage profile %s/%s: %s", namespace, name, exc)
        return None
    if configmap is None:
        return None
    try:
        data = json.loads((configmap.get("data") or {})[PROFILE_KEY])
        return ApplicationProfile.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring unreadable stage profile %s/%s: %s", namespace, name, exc)
        return None


async def save_profile(api: KubeApi, namespace: str, name: str, profile: ApplicationProfile) -> None:
    """Store the profile in its ConfigMap (created, or replaced when one exists)."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, "app.kubernetes.io/component": PROFILE_COMPONENT},
        },
        "data": {PROFILE_KEY: json.dumps(profile.to_dict(), indent=2)},
    }
    existing = await api.get(core_path("configmaps", namespace, name))
    if existing is None:
        await api.create(core_path("configmaps", namespace), body)
    else:
        await api.patch(core_path("configmaps", namespace, name), {"data": body["data"]})
