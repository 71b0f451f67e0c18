"""Errors of segments and campaigns."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, ValidationFailed


class SegmentNotFound(NotFound):
    code = "segment_not_found"


class CampaignNotFound(NotFound):
    code = "campaign_not_found"


class InvalidSegment(ValidationFailed):
    code = "invalid_segment"


class InvalidCampaign(ValidationFailed):
    code = "invalid_campaign"


class DuplicateCode(Conflict):
    code = "duplicate_code"


class InvalidTransition(Conflict):
    code = "invalid_transition"
