"""GDPR for members: export of a member's personal data and erasure by pseudonymisation."""

from allegiance.privacy.domain import PERSONAL_KEYS, scrub
from allegiance.privacy.errors import AlreadyErased
from allegiance.privacy.service import ERASED_EVENT, ErasureReport, erase_member, export_member

__all__ = ["ERASED_EVENT", "PERSONAL_KEYS", "AlreadyErased", "ErasureReport", "erase_member",
           "export_member", "scrub"]
