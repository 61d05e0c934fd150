"""Deprecation warnings for the original package's import paths, pointing at the user's
import line."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import FrameType

__all__ = ["warn_moved"]

_PACKAGE = str(Path(__file__).resolve().parent)


def warn_moved(old: str, new: str) -> None:
    """Warn that ``old`` (an original import path) is deprecated; ``new`` is the module
    to import from instead, or a sentence of advice."""
    advice = new if " " in new else f"import from {new} instead"
    warnings.warn(
        f"{old} is the original organic-scoring package's import path; {advice}",
        DeprecationWarning,
        stacklevel=_importer_level(),
    )


def _importer_level() -> int:
    """The ``stacklevel`` of the first frame outside this package and importlib (not
    counting importlib's bootstrap frames, as :func:`warnings.warn` does not)."""
    level = 1
    frame: FrameType | None = sys._getframe(2)  # the caller of warn_moved (level 2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not ("importlib" in filename and "_bootstrap" in filename):
            level += 1
            if not filename.startswith(_PACKAGE) and Path(filename).parent.name != "importlib":
                return level
        frame = frame.f_back
    return level
