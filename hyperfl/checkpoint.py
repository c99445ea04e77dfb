"""Global model checkpoints: one ``.npz`` file per finished round, written atomically."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

Weights = list[npt.NDArray[np.float32]]
KEEP = 2
"""Checkpoints kept: the newest and the one before (a crash mid-write never loses both)."""
_NAME = re.compile(r"^global-round-(\d{6})\.npz$")


def checkpoint_path(directory: Path, round_: int) -> Path:
    """Path of the checkpoint taken after ``round_``."""
    return directory / f"global-round-{round_:06d}.npz"


def save_checkpoint(directory: Path, round_: int, weights: Sequence[npt.NDArray[np.float32]]) -> Path:
    """Write the global weights after ``round_`` (temporary file, then rename) and prune old ones.

    Args:
        directory: Checkpoint folder (created if needed).
        round_: The round the weights are the result of.
        weights: Model weights in Keras order.

    Returns:
        The checkpoint's path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, round_)
    tmp = path.with_suffix(".tmp.npz")
    arrays = {f"w{i:03d}": np.asarray(w) for i, w in enumerate(weights)}
    np.savez(tmp, round=np.asarray(round_), **arrays)
    os.replace(tmp, path)
    older = sorted(p for p in directory.iterdir() if _NAME.match(p.name) and p != path)
    for stale in older[: max(len(older) - (KEEP - 1), 0)]:
        stale.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> tuple[int, Weights]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(round, weights)``."""
    with np.load(path) as data:
        names = sorted(k for k in data.files if k.startswith("w"))
        return int(data["round"]), [np.asarray(data[k], dtype=np.float32) for k in names]
