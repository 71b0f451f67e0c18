"""A pre-fork API server for crash tests (T15), run as a script:
``python tests/reliability/forkserver.py DATABASE_URL``.

The parent imports the application once (seconds on a busy machine), binds one listening socket
on 127.0.0.1 (port chosen by the kernel) and prints ``port <n>``. Each ``spawn`` line on its
stdin forks a fresh server process (a new process: its own database connections, in-flight
guard and event loop; only the imported, not yet used modules are shared) that serves on that
socket, and prints ``pid <n>``; the test kills that child with SIGKILL by its PID. Connections
arriving while no child runs wait in the socket's backlog. ``quit`` (or end of input) ends the
parent. Like gunicorn's pre-fork master, minus everything but the fork.
"""

from __future__ import annotations

import os
import socket
import sys


def _serve(sock: socket.socket, url: str) -> None:
    import uvicorn

    from allegiance.api.app import create_app
    from allegiance.kit.db import Database

    app = create_app(Database(url), rate_limit_per_minute=0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


def main() -> None:
    url = sys.argv[1]
    import uvicorn  # noqa: F401  (imported before forking, so children start at once)

    import allegiance.api.app  # noqa: F401

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    print(f"port {sock.getsockname()[1]}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        while True:  # reap the children killed so far
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if command != "spawn":
            break
        pid = os.fork()
        if pid == 0:
            try:
                _serve(sock, url)
            finally:
                os._exit(0)
        print(f"pid {pid}", flush=True)


if __name__ == "__main__":
    main()
