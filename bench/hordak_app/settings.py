"""Django settings for the hordak benchmark: the database comes from
``HORDAK_BENCH_DATABASE_URL`` (a PostgreSQL URL)."""

from __future__ import annotations

import os

import dj_database_url

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "mptt",
    "hordak",
]
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("HORDAK_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
HORDAK_INTERNAL_CURRENCY = "EUR"
DEFAULT_CURRENCY = "EUR"
CURRENCIES = ["EUR"]
