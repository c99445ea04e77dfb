"""A model builder is checked before any process is started for it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from mlscale.builders import builder_problem


def _package(tmp_path: Path, source: str) -> list[str]:
    (tmp_path / "mymodels").mkdir()
    (tmp_path / "mymodels" / "__init__.py").write_text("")
    (tmp_path / "mymodels" / "nets.py").write_text(source)
    return [str(tmp_path)]


def test_a_builder_defined_in_its_module_passes(tmp_path: Path) -> None:
    paths = _package(tmp_path, "import os\n\ndef build():\n    raise SystemExit('imported')\n")
    assert builder_problem("mymodels.nets:build", paths) is None


def test_a_missing_module_is_named_with_where_it_was_looked_for(tmp_path: Path) -> None:
    paths = _package(tmp_path, "def build(): ...\n")
    problem = builder_problem("mymodels.typo:build", paths)
    assert problem == f"no module 'mymodels.typo' on the import path (looked first in {tmp_path})"
    assert builder_problem("nomodels.nets:build", paths) is not None


def test_a_missing_function_is_named_with_the_file_read(tmp_path: Path) -> None:
    paths = _package(tmp_path, "def build(): ...\n")
    assert builder_problem("mymodels.nets:biuld", paths) == f"{tmp_path}/mymodels/nets.py defines no 'biuld'"


def test_names_bound_in_branches_imports_and_assignments_count(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "try:\n    from json import loads as fast\nexcept ImportError:\n    fast = None\n"
        "if TYPE_CHECKING:\n    pass\nelse:\n    def late(): ...\n"
        "alias = late\n"
    )
    paths = _package(tmp_path, source)
    for name in ("fast", "late", "alias"):
        assert builder_problem(f"mymodels.nets:{name}", paths) is None, name


def test_names_bound_by_unpacking_count(tmp_path: Path) -> None:
    paths = _package(tmp_path, "def _pair(): ...\nsmall, (large, *others) = _pair()\n")
    for name in ("small", "large", "others"):
        assert builder_problem(f"mymodels.nets:{name}", paths) is None, name
    assert builder_problem("mymodels.nets:medium", paths) is not None


@pytest.mark.parametrize(
    "source",
    [
        "from os.path import *\n",
        "for name in ('a', 'b'):\n    pass\n",  # the loop binds 'name', and what else it does is unseen
        "if (build := print):\n    pass\n",
        "globals()['build'] = print\n",
        "def __getattr__(name): ...\n",
        "match 1:\n    case _:\n        build = print\n",
    ],
)
def test_a_module_that_may_bind_names_unseen_is_not_second_guessed(tmp_path: Path, source: str) -> None:
    assert builder_problem("mymodels.nets:build", _package(tmp_path, source)) is None


def test_a_module_in_a_zip_is_read_from_it(tmp_path: Path) -> None:
    archive = tmp_path / "models.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zmodels/__init__.py", "")
        zipped.writestr("zmodels/nets.py", "def build(): ...\n")
    assert builder_problem("zmodels.nets:build", [str(archive)]) is None
    assert builder_problem("zmodels.nets:biuld", [str(archive)]) == f"{archive}/zmodels/nets.py defines no 'biuld'"


def test_the_import_path_and_modules_are_left_as_they_were(tmp_path: Path) -> None:
    import sys

    before = list(sys.path)
    builder_problem("mymodels.nets:build", _package(tmp_path, "def build(): ...\n"))
    assert sys.path == before
    assert "mymodels" not in sys.modules
