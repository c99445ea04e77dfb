"""Handlers of the FederatedTraining resource: decorators only, each handing off to one service function."""

from __future__ import annotations

from typing import Any

import kopf

from controllers import admission
from mlscale import API_GROUP, API_VERSION
from mlscale.kinds import KINDS

INFO = KINDS["FederatedTraining"]


@kopf.on.resume(API_GROUP, API_VERSION, "federatedtrainings")
@kopf.on.create(API_GROUP, API_VERSION, "federatedtrainings")
@kopf.on.update(API_GROUP, API_VERSION, "federatedtrainings")
def admit_federatedtraining(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Validate the FederatedTraining and record whether it is accepted."""
    admission.admit(INFO, body, patch, memo, logger)


@kopf.on.delete(API_GROUP, API_VERSION, "federatedtrainings")
def delete_federatedtraining(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Clean up after a deleted FederatedTraining (children go with their ownerReferences)."""
    admission.forget(INFO, body, memo, logger)
