"""Settings from the environment (prefix ``ALLEGIANCE_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLEGIANCE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./allegiance.db"
    # SQLite: seconds a writer waits for the lock before giving up.
    sqlite_busy_timeout: float = 5.0
    # Days an Idempotency-Key response is kept and replayed.
    idempotency_retention_days: int = 30
    debug: bool = False
    # Comma-separated origins allowed by CORS (empty: none).
    cors_origins: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # Requests per minute per API key (0 disables the limiter).
    rate_limit_per_minute: int = 6000


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
