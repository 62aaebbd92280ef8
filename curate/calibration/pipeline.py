"""``curate calibrate`` as a library call: read a candidate pool, choose the calibration sets
(``select_calibration``), write them and their diagnostics next to each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.calibration.select import select_calibration
from curate.errors import InvalidParameterError
from stores import files, read_table

FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
SUMMARY_COLUMNS = ("margin", "diversity", "likelihood", "surprise", "length", "padded")


def parse_metric_weights(text: str) -> dict[str, float]:
    """``"rouge1=1,rouge2=0.5"`` → ``{"rouge1": 1.0, "rouge2": 0.5}`` (a missing weight is 1).
    Raises ``InvalidParameterError`` for an empty name or a weight that is not a number."""
    weights = {}
    for item in text.split(","):
        name, _, w = item.strip().partition("=")
        if not name:
            raise InvalidParameterError(f"--metrics must look like 'm1=1,m2=0.5'; got {text!r}")
        try:
            weights[name] = float(w) if w else 1.0
        except ValueError:
            raise InvalidParameterError(f"metric weight for {name!r} is not a number: {w!r}") \
                from None
    return weights


def calibrate_file(path: str | Path, *, metrics: str | dict[str, float], out: str | Path,
                   mode: str = "relevance", strategy: str = "max_margin", k: int = 4,
                   reference: str = "positive", seed: int = 0,
                   overwrite: bool = False) -> dict[str, Any]:
    """Choose calibration sets for the pool in ``path`` (Parquet, CSV or JSONL) and write them
    to ``out`` and their diagnostics to ``<stem>.diagnostics<suffix>`` beside it, in the format
    ``out``'s suffix names (.parquet, .csv, .jsonl).

    ``metrics`` is ``{column: weight}`` or its text form (``parse_metric_weights``). Both output
    paths are checked (``files.check_output_path``; existing files only with ``overwrite``)
    before the pool is read. Returns the summary ``curate calibrate`` prints: instance and row
    counts, mode, strategy, both paths and the diagnostics' column means."""
    out = Path(out)
    fmt = FORMATS.get(out.suffix)
    if fmt is None:
        raise InvalidParameterError(f"--out must end in .parquet, .csv or .jsonl; got {out}")
    diag_path = out.with_name(f"{out.stem}.diagnostics{out.suffix}")
    for p, what in ((out, "the calibration sets"), (diag_path, "the diagnostics")):
        files.check_output_path(p, overwrite=overwrite, what=what)
    weights = parse_metric_weights(metrics) if isinstance(metrics, str) else metrics
    rows, diag = select_calibration(read_table(path), metrics=weights, mode=mode,
                                    strategy=strategy, k=k, reference=reference, seed=seed)
    files.write_frame(out, rows, fmt)
    files.write_frame(diag_path, diag, fmt)
    summary = {c: diag[c].mean() for c in SUMMARY_COLUMNS}
    return {"instances": diag.height, "rows": rows.height, "mode": mode, "strategy": strategy,
            "out": str(out), "diagnostics": str(diag_path), "mean": summary}
