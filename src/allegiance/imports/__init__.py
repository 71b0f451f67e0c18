"""Bulk import of purchases, activities, returns, accounts, users and catalogue items from
CSV, XLSX and Parquet files, through the same services as the API, exactly once; saved
column mappings and upload jobs (see ``docs/imports.md``)."""

from allegiance.imports.domain import (
    ColumnMapping,
    Group,
    MappingInvalid,
    Plan,
    RowError,
    group_rows,
    mapping_from,
    parse_row,
    plan,
)
from allegiance.imports.service import DEFAULT_SOURCE, Report, apply_batch, event_data, run

__all__ = [
    "DEFAULT_SOURCE", "ColumnMapping", "Group", "MappingInvalid", "Plan", "Report", "RowError",
    "apply_batch", "event_data", "group_rows", "mapping_from", "parse_row", "plan", "run",
]
