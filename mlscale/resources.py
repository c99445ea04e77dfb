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

    @property
    def namespace(self) -> str:
        """``metadata.namespace`` (empty where the file leaves it to ``kubectl``)."""
        resource: Any = self.resource
        return str(resource.metadata.namespace or "")


class ResourceFileError(ValueError):
    """A file with invalid resources; ``lines`` has one line per problem, each naming the field path."""

    def __init__(self, lines: list[str]) -> None:
        """Keep the lines and use them as the message."""
        super().__init__("\n".join(lines))
        self.lines = lines


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (as ``kubectl`` does).

    PyYAML keeps the last of two equal keys: a second ``spec:`` would silently replace the first.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            # A merge key (<<: *anchor) brings keys its mapping's own may override, as YAML intends.
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {first}): keep one", key_node.start_mark
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def read_numbered_documents(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The YAML documents of a file with their numbers (from 1, empty documents counted but skipped).

    Raises:
        ResourceFileError: when the file cannot be read or parsed, holds no document, or holds
            something other than mappings.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ResourceFileError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        line = data[: exc.start].count(b"\n") + 1
        raise ResourceFileError(
            [f"{path}: not UTF-8 text (byte 0x{bad} on line {line}): save the file as UTF-8"]
        ) from exc
    try:
        documents = [
            (number, doc) for number, doc in enumerate(yaml.load_all(text, Loader=_StrictLoader), 1) if doc is not None
        ]
    except yaml.YAMLError as exc:
        raise ResourceFileError([f"{path}: {_yaml_problem(exc)}"]) from exc
    if not documents:
        raise ResourceFileError([f"{path}: no resource found: the file is empty or holds only comments"])
    for number, doc in documents:
        if not isinstance(doc, dict):
            raise ResourceFileError([f"{path}: document {number}: expected a mapping with apiVersion and kind"])
    return documents


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``line N, column M: not valid YAML: what`` (PyYAML's own text where it has no position)."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"not valid YAML: {exc}"
    mark = exc.problem_mark
    what = "; ".join(part for part in (exc.context, exc.problem) if part)
    return f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {what}"


def read_documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a file (empty documents skipped).

    Raises:
        ResourceFileError: as :func:`read_numbered_documents`.
    """
    return [doc for _, doc in read_numbered_documents(path)]


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


def check_resources(path: Path) -> tuple[list[LoadedResource], list[str]]:
    """Read and validate every resource of a file: the valid ones, and one line per problem of the others.

    In a file of several documents each line names its document's number. Two resources of one
    kind and name are a problem: applied, the second would replace the first.

    Raises:
        ResourceFileError: when the file itself cannot be read as YAML documents.
    """
    documents = read_numbered_documents(path)
    loaded: list[LoadedResource] = []
    errors: list[str] = []
    first_of: dict[tuple[str, str, str], int] = {}
    for number, document in documents:
        prefix = f"{path}: document {number}: " if len(documents) > 1 else f"{path}: "
        try:
            info, resource = validate_document(document, prefix=prefix)
        except ResourceFileError as exc:
            errors.extend(exc.lines)
            continue
        item = LoadedResource(path, number - 1, info, resource)
        key = (info.kind, item.namespace, item.name)
        if key in first_of:
            errors.append(
                f"{prefix}{info.kind}/{item.name}: metadata.name: document {first_of[key]} is a {info.kind} of "
                "the same name, and applied, the second would replace the first: rename one"
            )
            continue
        first_of[key] = number
        loaded.append(item)
    return loaded, errors


def load_resources(path: Path) -> list[LoadedResource]:
    """Read and validate every resource of a file.

    Raises:
        ResourceFileError: listing every problem of every document.
    """
    loaded, errors = check_resources(path)
    if errors:
        raise ResourceFileError(errors)
    return loaded
