"""The append-only audit log."""

from allegiance.audit.models import AuditRecord
from allegiance.audit.service import ChainCheck, history, record, verify

__all__ = ["AuditRecord", "ChainCheck", "history", "record", "verify"]
