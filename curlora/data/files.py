"""Reading a user's table (CSV, TSV, JSON Lines, JSON, Parquet) with errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: File suffix → how pandas reads it.
READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def read_table(path: str | Path, encoding: str = "utf-8") -> pd.DataFrame:
    """The rows of a CSV / TSV / JSON Lines / JSON / Parquet file as a DataFrame."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"No task file at {path} (working directory {Path.cwd()}). Give a path to a "
            f"{', '.join(sorted(set(READERS)))} file, or a built-in task name."
        )
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"{path.name}: unknown file type {path.suffix!r}; use one of "
            f"{', '.join(sorted(READERS))}."
        )
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind in ("jsonl", "json"):
            return pd.read_json(path, lines=kind == "jsonl", encoding=encoding)
        # Text stays text: "001" or "NA" in a review must not turn into numbers or missing values.
        return pd.read_csv(
            path,
            sep="," if kind == "csv" else "\t",
            encoding=encoding,
            keep_default_na=False,
            na_values=[""],
        )
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path.name} is not readable as {encoding} text ({err.reason} at byte {err.start}). "
            f"Save it as UTF-8, or name its encoding: '{path.name}?encoding=latin-1'."
        ) from err
    except (ValueError, pd.errors.ParserError, OSError) as err:
        raise ValueError(f"{path.name} could not be read as {kind}: {err}") from err
