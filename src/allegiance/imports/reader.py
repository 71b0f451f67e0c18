"""Read a CSV or Parquet file in chunks (XLSX is not supported yet).

CSV is read with the standard ``csv`` module, one row at a time, cells as text (no type
guessing: ``007`` stays ``007``). Parquet is read with Polars in slices of at most
:data:`PARQUET_SLICE` rows, its cells keep their types (the row validation accepts both).
Memory is bounded by the chunk size, whatever the file's size: nothing is read ahead of the
import (Polars' streaming ``collect_batches`` runs the whole query ahead of a slow consumer, so
it is not used).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from allegiance.imports.domain import MappingInvalid

PARQUET_SLICE = 100_000
FORMATS = ("csv", "parquet")


def file_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("csv", "txt", "tsv"):
        return "csv"
    if suffix in ("parquet", "pq"):
        return "parquet"
    raise MappingInvalid(f"unknown file type {path.suffix!r} (use .csv or .parquet; save "
                         "spreadsheets as CSV)", field="file")


@dataclass
class Source:
    """A file opened for reading: its headers and row count (for the progress bar)."""

    path: Path
    format: str
    headers: list[str]
    rows: int
    separator: str = ","

    def chunks(self, size: int, columns: list[str]) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        """Chunks of (row number, header -> cell); row 1 is the first row under the header."""
        if self.format == "csv":
            yield from self._csv_chunks(size, columns)
        else:
            yield from self._parquet_chunks(size, columns)

    def _csv_chunks(self, size: int,
                    columns: list[str]) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        with self.path.open(newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(f, delimiter=self.separator)
            headers = next(rows, [])
            wanted = [(i, h) for i, h in enumerate(headers) if h in set(columns)]
            chunk: list[tuple[int, dict[str, Any]]] = []
            for number, cells in enumerate(rows, start=1):
                chunk.append((number, {h: cells[i] if i < len(cells) else None
                                       for i, h in wanted}))
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

    def _parquet_chunks(self, size: int,
                        columns: list[str]) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        scan = pl.scan_parquet(self.path).select(columns)
        step = max(size, PARQUET_SLICE)
        for offset in range(0, self.rows, step):
            part = scan.slice(offset, step).collect()
            for start in range(0, part.height, size):
                rows = part.slice(start, size).iter_rows(named=True)
                yield [(offset + start + i + 1, r) for i, r in enumerate(rows)]


def open_source(path: Path) -> Source:
    fmt = file_format(path)
    separator = "\t" if path.suffix.lower() == ".tsv" else ","
    source = Source(path, fmt, [], 0, separator)
    try:
        if fmt == "csv":
            headers, rows = _csv_shape(path, separator)
        else:
            scan = pl.scan_parquet(path)
            headers = list(scan.collect_schema().names())
            rows = int(scan.select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MappingInvalid(f"cannot read {path.name}: {exc}", field="file") from None
    source.headers, source.rows = headers, rows
    return source


def _csv_shape(path: Path, separator: str) -> tuple[list[str], int]:
    """The header row and the number of data rows (one streaming pass)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f, delimiter=separator)
        headers = next(rows, [])
        return headers, sum(1 for _ in rows)
