"""Per-image result tables and their aggregates with 95 % intervals.

A section writes one row per image (and per model / method) with :func:`write_table` beside its
``metrics.json``: Parquet when pyarrow is importable (typed columns, lists kept as lists), else CSV (lists and
other objects written as their text). Aggregates, all leaving out None and NaN (images a measure does not apply
to): :func:`mean`, :func:`rate` and :func:`stderr` for the numbers the text quotes, :func:`rate_interval` for a
share of successes (Wilson, the same as :func:`netviz.claims.wilson`) and :func:`mean_interval` for a mean
(Student's t interval).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from netviz.claims import ALPHA, wilson
from netviz.store import write_bytes_atomic


def parquet_available() -> bool:
    """Whether pandas can write Parquet here (pyarrow importable)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_table(rows: list[dict] | pd.DataFrame, path_without_suffix: Path | str) -> Path:
    """Write ``rows`` (dicts with the same keys, or a DataFrame; the index is not written) to
    ``<path_without_suffix>.parquet`` when pyarrow is importable, else ``.csv`` (UTF-8, a header row), atomically
    (a temporary file in the same folder, renamed into place). Returns the path written."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    base = Path(path_without_suffix)
    buffer = io.BytesIO()
    if parquet_available():
        path = base.with_name(base.name + ".parquet")
        frame.to_parquet(buffer, index=False, engine="pyarrow")
    else:
        path = base.with_name(base.name + ".csv")
        buffer.write(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    write_bytes_atomic(path, buffer.getvalue())
    return path


def read_table(path: Path | str) -> pd.DataFrame:
    """A table written by :func:`write_table` (by its suffix)."""
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _kept(values) -> np.ndarray:
    """``values`` as floats without None and NaN: the one rule of every aggregate here. A None or NaN marks an
    image a measure does not apply to (no boxes, a constant map), so it is left out of both the sum and the count."""
    return np.array([float(v) for v in values if v is not None and not np.isnan(float(v))], dtype=np.float64)


def mean(values, digits: int = 4) -> float | None:
    """Mean of ``values`` (None and NaN left out), rounded to ``digits``; None when nothing is left."""
    kept = _kept(values)
    return round(float(kept.mean()), digits) if kept.size else None


def rate(flags, digits: int = 4) -> float | None:
    """Share of true values among ``flags`` (None left out), rounded to ``digits``; None when nothing is left."""
    return mean((None if f is None else bool(f) for f in flags), digits)


def stderr(values, digits: int = 4) -> float | None:
    """Standard error of the mean of ``values`` (None and NaN left out; sample standard deviation / √n), rounded
    to ``digits``; None for fewer than two values."""
    kept = _kept(values)
    return round(float(np.std(kept, ddof=1) / np.sqrt(kept.size)), digits) if kept.size > 1 else None


def rate_interval(flags) -> dict:
    """Share of true values among ``flags`` (None left out): ``{"rate", "k", "n", "ci": [lo, hi] | None,
    "method"}``, the interval a 95 % Wilson score interval (None when n is 0)."""
    kept = _kept(flags)
    k, n = int(kept.sum()), int(kept.size)
    return {"rate": round(k / n, 4) if n else None, "k": k, "n": n, "ci": wilson(k, n), "method": "Wilson 95 %"}


def mean_interval(values, digits: int = 4) -> dict:
    """Mean of ``values`` (None and NaN left out): ``{"mean", "n", "ci": [lo, hi] | None, "method"}``, the interval
    a 95 % Student's t interval of the mean (None for fewer than 2 values; a point when all values are equal)."""
    kept = _kept(values)
    n = int(kept.size)
    average = mean(kept, digits)
    if n < 2:
        ci = None
    elif np.ptp(kept) == 0:
        ci = [average, average]
    else:
        lo, hi = stats.t.interval(1 - ALPHA, n - 1, loc=kept.mean(), scale=stats.sem(kept))
        ci = [round(float(lo), digits), round(float(hi), digits)]
    return {"mean": average, "n": n, "ci": ci, "method": "Student t 95 %"}
