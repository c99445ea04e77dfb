"""The router admin token the operator hands its router: never one that someone else may know."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from controllers.inferenceservice_service import router_admin_token
from controllers.kube import AlreadyExistsError, NotFoundError
from controllers.router_client import RouterUnavailableError

OWNER = {"apiVersion": "mlscale.dev/v1alpha1", "kind": "InferenceService", "metadata": {
    "name": "cnn", "namespace": "apps", "uid": "uid-cnn"}}  # fmt: skip
PATH = "/api/v1/namespaces/apps/secrets/cnn-router-admin"


class Secrets:
    """The Secrets of one namespace as an API server keeps them; ``finalizer`` keeps a deleted one, terminating."""

    def __init__(self, stored: dict[str, Any] | None = None, *, finalizer: bool = False) -> None:
        self.stored = stored
        self.finalizer = finalizer
        self.deletes: list[str | None] = []

    async def get(self, path: str) -> dict[str, Any] | None:
        assert path == PATH
        return copy.deepcopy(self.stored)

    async def delete(self, path: str, *, uid: str | None = None) -> bool:
        assert path == PATH
        self.deletes.append(uid)
        if self.stored is None:
            raise NotFoundError(404, "NotFound", "gone")
        if uid is not None and uid != self.stored["metadata"]["uid"]:
            raise AlreadyExistsError(409, "Conflict", "precondition failed: UID in precondition")
        if self.finalizer:
            self.stored["metadata"]["deletionTimestamp"] = "2026-12-08T00:00:00Z"
        else:
            self.stored = None
        return True

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.stored is None:
            self.stored = {**copy.deepcopy(body), "metadata": {**body["metadata"], "uid": "uid-new"}}
        return copy.deepcopy(self.stored)


def planted(token: str = "known-to-someone-else-" + "x" * 21, owners: list[str] | None = None) -> dict[str, Any]:
    refs = [{"uid": uid} for uid in owners or []]
    return {"metadata": {"name": "cnn-router-admin", "uid": "uid-planted", "ownerReferences": refs},
            "data": {"token": base64.b64encode(token.encode()).decode()}}  # fmt: skip


async def test_a_secret_someone_else_made_is_replaced_by_one_of_the_operators() -> None:
    api = Secrets(planted())
    token = await router_admin_token(api, OWNER, "cnn", "apps")  # type: ignore[arg-type]
    assert token != "known-to-someone-else-" + "x" * 21
    assert len(token) == 43
    assert api.deletes == ["uid-planted"]  # that Secret only, not one made meanwhile
    assert api.stored is not None
    assert api.stored["metadata"]["ownerReferences"][0]["uid"] == "uid-cnn"
    # Next period the operator's own is taken as it is.
    assert await router_admin_token(api, OWNER, "cnn", "apps") == token  # type: ignore[arg-type]
    assert api.deletes == ["uid-planted"]


@pytest.mark.parametrize(
    "token",
    ["x" * 20 + " " + "x" * 22, "short", "a\nb" * 20, "ü" * 43],
    ids=["space", "too-short", "newline", "not-ascii"],
)
async def test_a_token_the_operator_could_not_have_made_is_replaced(token: str) -> None:
    # Owned by the service, but edited: a newline would break the header, a short one be guessed.
    api = Secrets(planted(token=token, owners=["uid-cnn"]))
    replaced = await router_admin_token(api, OWNER, "cnn", "apps")  # type: ignore[arg-type]
    assert replaced != token
    assert len(replaced) == 43


async def test_a_planted_secret_that_will_not_go_is_never_taken() -> None:
    # A finalizer keeps it terminating: the create answers with it (409), and its token is refused.
    api = Secrets(planted(), finalizer=True)
    with pytest.raises(RouterUnavailableError, match="not a router admin token the operator made"):
        await router_admin_token(api, OWNER, "cnn", "apps")  # type: ignore[arg-type]
