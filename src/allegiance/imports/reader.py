"""Read a CSV, XLSX or Parquet file in chunks.

CSV is read with the standard ``csv`` module, one row at a time, cells as text (no type
guessing: ``007`` stays ``007``). Parquet is read with Polars in slices of at most
:data:`PARQUET_SLICE` rows, its cells keep their types (the row validation accepts both).
XLSX is read with openpyxl in read-only mode (rows streamed from the sheet's XML, never the
whole workbook in memory), from the first sheet; numbers, dates and text keep their types, a
whole float (``12.0``) is read as the integer 12, and empty rows are skipped.
Memory is bounded by the chunk size, whatever the file's size: nothing is read ahead of the
import (Polars' streaming ``collect_batches`` runs the whole query ahead of a slow consumer, so
it is not used).
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl

from allegiance.imports.domain import MappingInvalid

PARQUET_SLICE = 100_000
FORMATS = ("csv", "xlsx", "parquet")


def file_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("csv", "txt", "tsv"):
        return "csv"
    if suffix in ("parquet", "pq"):
        return "parquet"
    if suffix in ("xlsx", "xlsm"):
        return "xlsx"
    raise MappingInvalid(f"unknown file type {path.suffix!r} (use .csv, .xlsx or .parquet)",
                         field="file")


def stored_suffix(path: Path) -> str:
    """The suffix an uploaded file is stored under: its format's, except that a ``.tsv``
    stays ``.tsv`` (the suffix is what tells :func:`open_source` the file is tab-separated)."""
    fmt = file_format(path)
    return ".tsv" if path.suffix.lower() == ".tsv" else f".{fmt}"


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
        elif self.format == "xlsx":
            yield from self._xlsx_chunks(size, columns)
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

    def _xlsx_chunks(self, size: int,
                     columns: list[str]) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        wanted_names = set(columns)
        chunk: list[tuple[int, dict[str, Any]]] = []
        rows = _xlsx_rows(self.path)
        try:
            headers = next(rows, [])
            wanted = [(i, h) for i, h in enumerate(headers) if h in wanted_names]
            for number, cells in enumerate(rows, start=1):
                chunk.append((number, {h: _cell(cells[i]) if i < len(cells) else None
                                       for i, h in wanted}))
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
        finally:
            rows.close()
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
        elif fmt == "xlsx":
            headers, rows = _xlsx_shape(path)
        else:
            scan = pl.scan_parquet(path)
            headers = list(scan.collect_schema().names())
            rows = int(scan.select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError, csv.Error, KeyError,
            ValueError, zipfile.BadZipFile) as exc:
        raise MappingInvalid(f"cannot read {path.name}: {exc}", field="file") from None
    source.headers, source.rows = headers, rows
    return source


def _csv_shape(path: Path, separator: str) -> tuple[list[str], int]:
    """The header row and the number of data rows (one streaming pass)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f, delimiter=separator)
        headers = next(rows, [])
        return headers, sum(1 for _ in rows)


def _cell(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _xlsx_rows(path: Path) -> Generator[list[Any], None, None]:
    """The first sheet's non-empty rows as lists (the header row first), streamed."""
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        header = True
        for values in sheet.iter_rows(values_only=True):
            cells = list(values)
            if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                continue
            if header:
                cells = ["" if c is None else str(c).strip() for c in cells]
                while cells and not cells[-1]:
                    cells.pop()
                header = False
            yield cells
    finally:
        book.close()


def _xlsx_shape(path: Path) -> tuple[list[str], int]:
    rows = _xlsx_rows(path)
    try:
        headers = [str(h) for h in next(rows, [])]
        return headers, sum(1 for _ in rows)
    finally:
        rows.close()
