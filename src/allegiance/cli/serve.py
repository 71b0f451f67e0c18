"""``allegiance serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from allegiance.kit.cli import DatabaseUrl, console, redact, resolve_url
from allegiance.kit.settings import get_settings


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on (default: ALLEGIANCE_HOST or 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port (default: ALLEGIANCE_PORT or 8000).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL for more than 1).")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (a line per request on stdout).")
    ] = True,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    url = resolve_url(database_url)
    # The app factory reads its settings from the environment, in this and every worker.
    os.environ["ALLEGIANCE_DATABASE_URL"] = url
    get_settings.cache_clear()
    base = f"http://{host}:{port}"
    console.print(f"Allegiance API on [bold]{base}[/] (database {redact(url)})")
    console.print(f"API docs: {base}/docs")
    uvicorn.run(
        "allegiance.api.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        reload=reload,
        log_level="info",
        access_log=access_log,
    )
