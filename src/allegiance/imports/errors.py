"""Errors of bulk imports (stable codes for the API)."""

from __future__ import annotations

from allegiance.kit.errors import NotFound, ValidationFailed


class MappingNotFound(NotFound):
    code = "import_mapping_not_found"


class ImportJobNotFound(NotFound):
    code = "import_job_not_found"


class NoErrorReport(NotFound):
    code = "no_error_report"


class InvalidUpload(ValidationFailed):
    code = "invalid_upload"
