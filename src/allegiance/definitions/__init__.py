"""Programs as code: definition documents, versions, apply."""

from allegiance.definitions.errors import InvalidDefinition
from allegiance.definitions.models import ProgramVersion
from allegiance.definitions.service import apply, compile_document
from allegiance.definitions.versions import Version, latest, list_versions, store, version_at

__all__ = [
    "InvalidDefinition", "ProgramVersion", "Version", "apply", "compile_document", "latest",
    "list_versions", "store", "version_at",
]
