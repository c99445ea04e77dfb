"""Where stage profiles are kept between runs on one machine.

A profile belongs to an application file (its contents) and its arguments: change either
and the stages differ, so the key is a hash of both. The cache lives under
``$MLSCALE_CACHE_DIR`` (default ``~/.cache/mlscale``), in ``dynaspark/profiles/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from dynaspark.profile import ApplicationProfile

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The profile cache folder (not created)."""
    root = os.environ.get("MLSCALE_CACHE_DIR")
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlscale"
    return base / "dynaspark" / "profiles"


def profile_key(app_file: Path, arguments: Sequence[str]) -> str:
    """A file-name-safe key for the application file's contents and its arguments."""
    digest = hashlib.sha256()
    digest.update(app_file.read_bytes())
    digest.update(json.dumps(list(arguments)).encode())
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in app_file.stem)[:40]
    return f"{stem}-{digest.hexdigest()[:16]}"


def cached_profile_path(app_file: Path, arguments: Sequence[str]) -> Path:
    """Where the profile of this application and these arguments is (or would be) kept."""
    return cache_dir() / f"{profile_key(app_file, arguments)}.json"


def load_cached_profile(app_file: Path, arguments: Sequence[str]) -> tuple[ApplicationProfile | None, Path]:
    """Return the cached profile (``None`` when there is none or it is unreadable) and its path."""
    path = cached_profile_path(app_file, arguments)
    if not path.exists():
        return None, path
    try:
        return ApplicationProfile.load(path), path
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable stage profile %s: %s", path, exc)
        return None, path
