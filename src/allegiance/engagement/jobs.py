"""Batch jobs of engagement: expire certifications past their validity, and send leavers'
surveys to the accounts whose enrolment closed (each batch in its own transaction; a run
stopped half-way resumes without doing anything twice)."""

from __future__ import annotations

from allegiance.engagement.academy import run as run_certifications
from allegiance.engagement.leavers import run as run_leavers

__all__ = ["run_certifications", "run_leavers"]
