"""Programs as code: definition documents, validation, versions, apply, export and diff."""

from allegiance.definitions.diff import Change, diff, render
from allegiance.definitions.errors import InvalidDefinition
from allegiance.definitions.models import ProgramVersion
from allegiance.definitions.service import apply, compile_document, diff_draft, export
from allegiance.definitions.validation import Problem, normalise, validate
from allegiance.definitions.versions import Version, latest, list_versions, store, version_at

__all__ = [
    "Change", "InvalidDefinition", "Problem", "ProgramVersion", "Version", "apply",
    "compile_document", "diff", "diff_draft", "export", "latest", "list_versions", "normalise",
    "render", "store", "validate", "version_at",
]
