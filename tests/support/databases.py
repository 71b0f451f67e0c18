"""Fresh, migrated databases for tests: SQLite files and PostgreSQL databases.

The schema is built once per run by the Alembic migrations into a template (a SQLite file, a
PostgreSQL template database) and copied for every test, so each test is isolated and fast.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from allegiance.kit import tenancy
from allegiance.kit.migrate import grant_app_role, upgrade

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
_TEMPLATE_SQLITE: Path | None = None
_TEMPLATE_PG: str | None = None
_pg_checked: bool | None = None


def require_postgres() -> bool:
    return os.environ.get("ALLEGIANCE_REQUIRE_POSTGRES") == "1"


def postgres_admin_url() -> str:
    return os.environ.get("ALLEGIANCE_TEST_POSTGRES_URL", DEFAULT_PG)


def postgres_available() -> bool:
    global _pg_checked
    if _pg_checked is None:
        try:
            with psycopg.connect(postgres_admin_url(), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_checked = True
        except psycopg.Error:
            _pg_checked = False
    return _pg_checked


def as_superuser() -> bool:
    """Tests connect as the ordinary application role (row-level security applies), unless
    ALLEGIANCE_TEST_PG_AS_SUPERUSER=1."""
    return os.environ.get("ALLEGIANCE_TEST_PG_AS_SUPERUSER") == "1"


def app_role_url(url: str, role: str = tenancy.DEFAULT_APP_ROLE) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def admin_url_of(url: str) -> str:
    """The same database as the administrator (the owner, who may bypass RLS)."""
    return _replace_db(postgres_admin_url(), url.rpartition("/")[2])


def _replace_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def sqlite_url(workdir: Path) -> str:
    global _TEMPLATE_SQLITE
    if _TEMPLATE_SQLITE is None:
        template_dir = Path(tempfile.mkdtemp(prefix="allegiance-template-"))
        template = template_dir / "template.db"
        upgrade(f"sqlite:///{template}")
        _TEMPLATE_SQLITE = template
    target = workdir / f"test-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(_TEMPLATE_SQLITE, target)
    return f"sqlite:///{target}"


def postgres_url() -> str:
    """A new database copied from a migrated template; drop it with :func:`drop_postgres`."""
    global _TEMPLATE_PG
    admin = postgres_admin_url()
    if _TEMPLATE_PG is None:
        name = f"allegiance_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        upgrade(_replace_db(admin, name))
        grant_app_role(_replace_db(admin, name))
        _TEMPLATE_PG = name
    name = f"allegiance_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_TEMPLATE_PG}"')
    url = _replace_db(admin, name)
    return url if as_superuser() else app_role_url(url)


def drop_postgres(url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_template() -> None:
    """Remove this run's templates (the SQLite file's directory, the PostgreSQL database)."""
    global _TEMPLATE_PG, _TEMPLATE_SQLITE
    if _TEMPLATE_SQLITE is not None:
        shutil.rmtree(_TEMPLATE_SQLITE.parent, ignore_errors=True)
        _TEMPLATE_SQLITE = None
    if _TEMPLATE_PG is not None and postgres_available():
        with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE_PG}" WITH (FORCE)')
        _TEMPLATE_PG = None
