"""The README's tour runs as written: each `mlscale validate/explain` command gives the output shown.

The `mlscale run` commands of the tour are exercised by each engine's integration tests, the
`helm`/`kubectl` commands by tests/deploy.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()


def console_blocks() -> list[list[tuple[str, list[str]]]]:
    """Each ```console block as a list of (command, output lines)."""
    blocks = []
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


CHECKED = [step for block in console_blocks() for step in block if " validate " in step[0] or " explain " in step[0]]


def test_the_tour_has_checked_commands() -> None:
    assert len(CHECKED) >= 2


@pytest.mark.parametrize(("command", "expected"), CHECKED, ids=[c for c, _ in CHECKED])
def test_readme_command_prints_what_the_readme_shows(command: str, expected: list[str], tmp_path: Path) -> None:
    # Files the tour shows with `cat` are written first, as the reader would have them.
    for block in console_blocks():
        for cmd, output in block:
            if cmd.startswith("cat "):
                (tmp_path / cmd.split()[1]).write_text("\n".join(output) + "\n")
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/mlscale"
    args = []
    for arg in argv[1:]:
        if "*" in arg:
            args.extend(str(p) for p in sorted(ROOT.glob(arg)))
        elif (tmp_path / arg).exists():
            args.append(arg)
        else:
            args.append(str(ROOT / arg) if (ROOT / arg).exists() else arg)
    result = subprocess.run(
        [sys.executable, "-m", "mlscale", *args], capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False
    )
    shown = [line for line in expected if line.strip()]
    printed = (result.stdout + result.stderr).replace(str(ROOT) + "/", "").splitlines()
    for line in shown:
        if line.strip() == "...":
            continue
        assert line in printed, f"README shows {line!r}; the command printed:\n" + "\n".join(printed)
