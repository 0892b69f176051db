"""Turning report dataclasses into plain JSON values: NumPy scalars become Python numbers,
enums their values, tuples lists, and any non-finite float ``None`` (JSON has no NaN)."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def finite(x: float | np.floating[Any] | None) -> float | None:
    """``x`` as a float, or ``None`` when it is missing, NaN or infinite."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def plain(value: Any) -> Any:
    """A JSON-ready copy of ``value`` (dataclasses, mappings, sequences, arrays, scalars)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return finite(value)
    return value
