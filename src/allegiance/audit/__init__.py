"""The append-only audit log."""

from allegiance.audit.models import AuditRecord
from allegiance.audit.service import (
    PERSONAL_FIELDS,
    ChainCheck,
    history,
    page,
    record,
    record_request,
    redact,
    send_pending,
    verify,
    write_pending,
)

__all__ = ["PERSONAL_FIELDS", "AuditRecord", "ChainCheck", "history", "page", "record",
           "record_request", "redact", "send_pending", "verify", "write_pending"]
