"""Named batch jobs. Each job runs in batches, every batch in its own committed transaction,
so a job can be stopped at any time and run again (it resumes; nothing is done twice).

A job is a function ``run(db, batch, progress) -> summary``: ``progress(step, count)`` is
called after every batch, and the summary maps figure names to totals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from allegiance import ledger
from allegiance.analytics import jobs as analytics_jobs
from allegiance.campaigns import jobs as campaign_jobs
from allegiance.cashback import jobs as cashback_jobs
from allegiance.engagement import jobs as engagement_jobs
from allegiance.imports import jobs as import_jobs
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.models import IdempotencyRecord
from allegiance.kit.settings import get_settings
from allegiance.ledger import expiry
from allegiance.mdf import jobs as mdf_jobs
from allegiance.memberships import jobs as membership_jobs
from allegiance.referrals import jobs as referral_jobs
from allegiance.tiers import jobs as tier_jobs
from allegiance.webhooks import jobs as webhook_jobs

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    run: Callable[[Database, int, Progress], dict[str, int]]


def _no_progress(_step: str, _count: int) -> None:
    return None


def run_expire(db: Database, batch: int = 1000, progress: Progress = _no_progress) -> dict[str, int]:
    """Expire pending holds past their deadline, then the points of expired lots."""
    holds = 0
    while True:
        with db.transaction() as session:
            done = ledger.expire_holds(session, limit=batch)
        holds += done
        progress("holds", done)
        if done < batch:
            break

    @contextlib.contextmanager
    def counted() -> Iterator[Session]:
        with db.transaction() as session:
            yield session
        progress("lot batches", 1)

    # Lots go in chunks of at least expiry.CHUNK (set-based: a chunk's fixed costs are a
    # few statements, so small chunks only add commits).
    report = ledger.run_expiry(counted, batch=max(batch, expiry.CHUNK))
    return {
        "holds_expired": holds,
        "lots_expired": report.lots,
        "amount_expired": report.points,
        "entries_posted": report.entries,
    }


def run_expiry_notices(db: Database, batch: int = 1000,
                       progress: Progress = _no_progress) -> dict[str, int]:
    """One ``points.expiring`` event per wallet and expiry date within the notice period."""
    days = get_settings().expiry_notice_days
    sent = 0
    after = None
    while True:
        with db.transaction() as session:
            added, after = ledger.notify_expiring(session, days=days, limit=batch, after=after)
        sent += added
        progress("notices", added)
        if after is None:
            return {"notices_sent": sent}


def run_release(db: Database, batch: int = 1000,
                progress: Progress = _no_progress) -> dict[str, int]:
    """Post the pending holds whose release time has come (earnings after the return window,
    referral commissions and bounties after their lock date)."""
    released = 0
    while True:
        with db.transaction() as session:
            done = ledger.release_due_holds(session, limit=batch)
        released += done
        progress("holds", done)
        if done < batch:
            return {"holds_released": released}


def run_tiers(db: Database, batch: int = 1000, progress: Progress = _no_progress) -> dict[str, int]:
    """Recalculate every program's tiers; settles the month that ended once per ladder."""
    return tier_jobs.recalculate_all(db, progress=progress)


def run_prune_idempotency(
    db: Database, batch: int = 1000, progress: Progress = _no_progress
) -> dict[str, int]:
    """Delete stored Idempotency-Key responses past their retention (the keys become reusable;
    business keys such as ``entry_key`` still refuse duplicates)."""
    now = clock.now()
    deleted = 0
    while True:
        with db.transaction() as session:
            rows = session.execute(
                select(IdempotencyRecord.tenant_id, IdempotencyRecord.key)
                .where(IdempotencyRecord.expires_at <= now)
                .order_by(IdempotencyRecord.expires_at)
                .limit(batch)
            ).all()
            by_tenant: dict[str, list[str]] = {}
            for tenant_id, key in rows:
                by_tenant.setdefault(tenant_id, []).append(key)
            for tenant_id, keys in by_tenant.items():
                session.execute(
                    delete(IdempotencyRecord).where(
                        IdempotencyRecord.tenant_id == tenant_id,
                        IdempotencyRecord.key.in_(keys),
                        IdempotencyRecord.expires_at <= now,
                    )
                )
        deleted += len(rows)
        progress("records", len(rows))
        if len(rows) < batch:
            return {"records_deleted": deleted}


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "expire",
            "Release pending holds past their deadline; post expired points to breakage.",
            run_expire,
        ),
        Job(
            "expiry-notices",
            "Announce points expiring within ALLEGIANCE_EXPIRY_NOTICE_DAYS (points.expiring, once).",
            run_expiry_notices,
        ),
        Job(
            "release",
            "Post pending holds whose release time has come (pending → available).",
            run_release,
        ),
        Job(
            "tiers",
            "Recalculate every program's tiers (set-based); settle the month that ended.",
            run_tiers,
        ),
        Job(
            "prune-idempotency",
            "Delete stored Idempotency-Key responses older than their retention.",
            run_prune_idempotency,
        ),
        Job(
            "imports",
            "Run the uploaded import jobs that are queued (or whose worker went silent).",
            import_jobs.run_pending,
        ),
        Job(
            "memberships",
            "Write membership status changes that came due (trial end, grace, lapse, cancel).",
            membership_jobs.run,
        ),
        Job(
            "segments",
            "Refresh every program's RFM scores and segments (set-based); announce who entered/left.",
            campaign_jobs.run,
        ),
        Job(
            "webhooks",
            "Deliver outbox messages to webhook endpoints; make every due retry (until idle).",
            webhook_jobs.run,
        ),
        Job(
            "rebates",
            "Accrue volume rebates (pending), true up ended periods, claw back returns.",
            cashback_jobs.run,
        ),
        Job(
            "referrals",
            "Attribute referral commissions on purchases; give back those of refunds.",
            referral_jobs.run,
        ),
        Job(
            "certifications",
            "Expire certifications past their validity (their tier metric drops to 0).",
            engagement_jobs.run_certifications,
        ),
        Job(
            "leavers-surveys",
            "Send the open leavers' surveys to the accounts whose enrolment closed.",
            engagement_jobs.run_leavers,
        ),
        Job(
            "reports",
            "Recompute the admin pages' reports (KPIs, liability, retention, CLV…) of every "
            "active program and store them with their time.",
            analytics_jobs.run,
        ),
        Job(
            "liability-fold",
            "Fold the liability deltas PostgreSQL's triggers append into liability_holding "
            "(keeps the liability report's read small; it is exact either way).",
            analytics_jobs.run_fold,
        ),
        Job(
            "mdf",
            "Accrue co-marketing funds from purchases; expire funds past their deadline.",
            mdf_jobs.run,
        ),
    )
}


def get(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise KeyError(f"unknown job {name!r}; known: {', '.join(sorted(JOBS))}") from None


def register(job: Job) -> None:
    """Add a feature's job (features' ``jobs.py`` are registered by this package)."""
    if job.name in JOBS:
        raise ValueError(f"job {job.name!r} is already registered")
    JOBS[job.name] = job
