"""Reading resource YAML files and validating them offline, as the operator does on admission."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mlscale.api import format_validation_error
from mlscale.kinds import KindInfo, UnknownKindError, kind_of


@dataclass(frozen=True)
class LoadedResource:
    """One validated resource from a file."""

    source: Path
    index: int
    info: KindInfo
    resource: BaseModel

    @property
    def name(self) -> str:
        """``metadata.name``."""
        resource: Any = self.resource
        return str(resource.metadata.name)


class ResourceFileError(ValueError):
    """A file with invalid resources; ``lines`` has one line per problem, each naming the field path."""

    def __init__(self, lines: list[str]) -> None:
        """Keep the lines and use them as the message."""
        super().__init__("\n".join(lines))
        self.lines = lines


def read_documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a file (empty documents skipped).

    Raises:
        ResourceFileError: when the file cannot be read or parsed, or holds something other than mappings.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ResourceFileError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise ResourceFileError([f"{path}: not valid YAML: {exc}"]) from exc
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict):
            raise ResourceFileError([f"{path}: document {index + 1}: expected a mapping with apiVersion and kind"])
    return documents


def validate_document(document: dict[str, Any], prefix: str = "") -> tuple[KindInfo, BaseModel]:
    """Validate one resource document against its model.

    Raises:
        ResourceFileError: with one line per problem, each naming the field path.
    """
    try:
        info = kind_of(document)
    except UnknownKindError as exc:
        raise ResourceFileError([f"{prefix}{exc}"]) from exc
    name = (document.get("metadata") or {}).get("name", "?")
    try:
        resource = info.model().model_validate(document)
    except ValidationError as exc:
        raise ResourceFileError(format_validation_error(exc, f"{prefix}{info.kind}/{name}: ")) from exc
    return info, resource


def load_resources(path: Path) -> list[LoadedResource]:
    """Read and validate every resource of a file.

    Raises:
        ResourceFileError: listing every problem of every document.
    """
    loaded: list[LoadedResource] = []
    errors: list[str] = []
    for index, document in enumerate(read_documents(path)):
        try:
            info, resource = validate_document(document, prefix=f"{path}: ")
        except ResourceFileError as exc:
            errors.extend(exc.lines)
            continue
        loaded.append(LoadedResource(path, index, info, resource))
    if errors:
        raise ResourceFileError(errors)
    return loaded
