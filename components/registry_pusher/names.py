"""Names that become path components (model and pipeline names), checked where they enter.

A name is one plain path component: letters, digits, ``_``, ``.``, ``-``, and not ``.`` or ``..``.
``path_under`` resolves a path and refuses it if it leaves its root (through ``..`` or a symlink),
so nothing is written or removed outside the configured roots.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

NAME_RULE = "must be letters, digits, '_', '.' or '-' only (one path component, not '.' or '..')"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def is_valid_name(value: object) -> bool:
    return isinstance(value, str) and bool(_NAME.fullmatch(value)) and value not in (".", "..")


def check_name(value: object, key: str = "model_name") -> str:
    """``value`` if it is a valid name; otherwise a one-line ``ValueError`` naming ``key``."""
    if not is_valid_name(value):
        raise ValueError(f"'{key}' = {value!r} {NAME_RULE}")
    return value  # type: ignore[return-value]


def path_under(root: str | os.PathLike, *parts: str) -> Path:
    """``root/parts...`` resolved; ``ValueError`` if it is not strictly inside the resolved ``root``."""
    base = Path(root).resolve()
    path = base.joinpath(*parts).resolve()
    if path == base or not path.is_relative_to(base):
        raise ValueError(f"'{os.path.join(root, *parts)}' resolves to '{path}', outside '{base}'")
    return path
