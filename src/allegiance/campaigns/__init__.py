"""Segments and campaigns: rule-based segments over member fields refreshed set-based (the
codes a member is in are ``member.segments`` to every rule), and campaigns — time-boxed earning
rules for segments with budgets — added to the earning path while they run."""

from allegiance.campaigns.inputs import inputs_changed
from allegiance.campaigns.memberships import segment_codes
from allegiance.campaigns.models import Campaign, Segment, SegmentMember
from allegiance.campaigns.rfm import get_model as rfm_model
from allegiance.campaigns.segments import (
    create_segment,
    get_segment,
    leave_all_segments,
    list_segments,
    members_of,
    refresh_account,
    refresh_program,
    refresh_segment,
)
from allegiance.campaigns.service import (
    Preview,
    create_campaign,
    get_campaign,
    list_campaigns,
    preview,
    start,
    stop,
    with_campaigns,
)

__all__ = [
    "Campaign",
    "Preview",
    "Segment",
    "SegmentMember",
    "create_campaign",
    "create_segment",
    "get_campaign",
    "get_segment",
    "inputs_changed",
    "leave_all_segments",
    "list_campaigns",
    "list_segments",
    "members_of",
    "preview",
    "refresh_account",
    "refresh_program",
    "refresh_segment",
    "rfm_model",
    "segment_codes",
    "start",
    "stop",
    "with_campaigns",
]
