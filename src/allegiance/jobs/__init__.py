"""Batch jobs: a registry of named jobs the CLI (or a scheduler) runs in batches."""

from allegiance.jobs.registry import (
    JOBS,
    Job,
    Progress,
    get,
    register,
    run_expire,
    run_prune_idempotency,
    run_tiers,
)

__all__ = [
    "JOBS", "Job", "Progress", "get", "register", "run_expire", "run_prune_idempotency",
    "run_tiers",
]
