"""Settings from the environment (prefix ``ALLEGIANCE_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLEGIANCE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./allegiance.db"
    # SQLite: seconds a writer waits for the lock before giving up.
    sqlite_busy_timeout: float = 5.0
    # Group commit of concurrent writes (one COMMIT, one fsync, for the units of work queued
    # within a few milliseconds; each unit in its own savepoint): "auto" = on for a file
    # SQLite database, off on PostgreSQL; "on" also turns it on for PostgreSQL (the server's
    # writes then run one at a time per process, sharing commits); "off" everywhere.
    group_commit: Literal["auto", "on", "off"] = "auto"
    # SQLite: FULL (the default) makes every commit durable (an fsync of the WAL); NORMAL
    # may lose the last commits on a power failure. Only benchmarks compare the two.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Days an Idempotency-Key response is kept and replayed.
    idempotency_retention_days: int = 30
    # `points.expiring` webhooks go out this many days before points expire (job expiry-notices).
    expiry_notice_days: int = Field(30, ge=1, le=3650)
    # The admin pages show a stored report older than this, then recompute it after the
    # response (job `reports` keeps them recent; the API and CLI always compute live).
    report_max_age_seconds: int = Field(60, ge=0)
    # The CPU niceness batch jobs and CLI reports give their own process (0: unchanged), so
    # the API's interactive reads win the CPU when they share a machine (see
    # docs/operations.md).
    batch_nice: int = Field(10, ge=0, le=19)
    debug: bool = False
    # Comma-separated origins allowed by CORS (empty: none).
    cors_origins: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # Requests per minute per API key (0 disables the limiter).
    rate_limit_per_minute: int = 6000
    # Seconds a checked API key is trusted without reading its row again: a revocation or
    # rotation takes effect at once in the process that made it, within this bound in the
    # others (0: read the key on every request).
    api_key_cache_seconds: float = Field(5.0, ge=0, le=60)
    # Queued API writes (redemptions) of one tenant that one server process lets into the
    # database at once (0: no limit). A tenant's postings serialise on its journal number
    # anyway; more of them waiting on that row lock in PostgreSQL cost CPU (wake-ups,
    # lock-manager contention) and no throughput. The others wait in the process.
    api_tenant_writers: int = Field(2, ge=0, le=1000)
    # Requests per minute per signed-in portal user, in bursts of a sixth (0 disables it).
    portal_rate_limit_per_minute: int = 600
    # Where uploaded import files and their error reports are kept.
    import_dir: str = "./var/imports"
    # Who runs uploaded imports: "thread" (a worker thread of the API process) or "none"
    # (only `allegiance jobs run imports`).
    import_worker: str = "thread"
    # A running import job whose worker has not reported for this long is taken over.
    import_stale_seconds: int = 300
    # The largest file an upload may send.
    import_max_bytes: int = 2 * 1024**3
    # Where proof files sent with claims through the member portal are kept.
    proof_dir: str = "./var/proofs"
    # The largest proof file (an invoice scan, a photo) the portal accepts.
    proof_max_bytes: int = 10 * 1024**2


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def group_commit_choice(settings: Settings) -> bool | None:
    """``Database(group_commit=…)`` for ``ALLEGIANCE_GROUP_COMMIT`` (None: the engine's default)."""
    return {"auto": None, "on": True, "off": False}[settings.group_commit]


def production_problems(settings: Settings) -> list[str]:
    """What in these settings is unfit for production (empty: fine)."""
    problems: list[str] = []
    if settings.debug:
        problems.append("ALLEGIANCE_DEBUG is on: turn it off in production")
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if "*" in origins:
        problems.append("ALLEGIANCE_CORS_ORIGINS allows every origin: list the allowed ones")
    for origin in origins:
        if origin != "*" and not origin.startswith("https://"):
            problems.append(f"CORS origin {origin!r} is not https")
    if settings.rate_limit_per_minute <= 0:
        problems.append("ALLEGIANCE_RATE_LIMIT_PER_MINUTE is 0: API keys are not rate limited")
    if settings.portal_rate_limit_per_minute <= 0:
        problems.append("ALLEGIANCE_PORTAL_RATE_LIMIT_PER_MINUTE is 0: portal users are not "
                        "rate limited")
    if settings.sqlite_synchronous != "FULL":
        problems.append("ALLEGIANCE_SQLITE_SYNCHRONOUS is not FULL: SQLite commits may be lost "
                        "on a power cut")
    return problems


def cors_origins(settings: Settings) -> list[str]:
    return [o.strip() for o in settings.cors_origins.split(",") if o.strip() and o.strip() != "*"]
