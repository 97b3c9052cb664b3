"""JSON for results: numpy to Python, non-finite floats to null (JSON has no inf or NaN)."""

from __future__ import annotations

import json
import math

import numpy as np


def jsonable(obj):
    """A copy of ``obj`` that :func:`json.dumps` accepts with ``allow_nan=False``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def dumps(obj, **kw) -> str:
    return json.dumps(jsonable(obj), allow_nan=False, **kw)
