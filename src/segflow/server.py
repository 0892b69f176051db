"""Process wiring: open the store, build the live evaluator and the app, run uvicorn.

``run_server`` is what ``segflow serve`` (and the demo) run.  For tests,
``serve_in_thread`` runs a real uvicorn server on a free 127.0.0.1 port inside the
test process, and ``ServerProcess`` runs one as a child process (``python -m
segflow.server``) that can be killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from segflow.api.app import create_app
from segflow.api.deps import ServerContext, Settings
from segflow.api.fastlane import FastLane
from segflow.realtime.timers import Clock, WallClock
from segflow.service import Segflow


def make_context(
    db: str | Path,
    *,
    clock: Clock | None = None,
    settings: Settings | None = None,
    live: bool = True,
) -> ServerContext:
    """Open ``db`` and build the server context (with the live evaluator when
    ``segflow.live`` is available and ``live``)."""
    app = Segflow(db)
    ctx = ServerContext(app=app, clock=clock or WallClock(), settings=settings or Settings())
    if live:
        try:
            from segflow.live import LiveEvaluator
        except ModuleNotFoundError as e:
            if e.name != "segflow.live":
                raise
        else:
            ctx.live = LiveEvaluator(app, ctx.clock)
    return ctx


def _config(ctx: ServerContext, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        FastLane(create_app(ctx)),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        # segflow never reads the client address: no X-Forwarded-For parsing per request
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


def run_server(
    db: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "info",
    settings: Settings | None = None,
    ctx: ServerContext | None = None,
) -> None:
    """Serve ``db`` until interrupted (one process: API, live evaluator, scheduler)."""
    ctx = ctx or make_context(db, settings=settings)
    # The writer thread runs long stretches of Python (parsing, live evaluation); a
    # shorter GIL switch interval lets the event loop answer look-ups in between.
    sys.setswitchinterval(ctx.settings.switch_interval_seconds)
    try:
        uvicorn.Server(_config(ctx, host, port, log_level)).run()
    finally:
        with ctx.lock:
            ctx.app.close()


@dataclass
class ThreadServer:
    """A running in-process server."""

    ctx: ServerContext
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@contextmanager
def serve_in_thread(
    ctx: ServerContext, host: str = "127.0.0.1", port: int = 0, *, close: bool = True
) -> Iterator[ThreadServer]:
    """A real uvicorn server for ``ctx`` on a free port, in a thread; stopped (and the
    store closed, unless ``close=False``) on exit."""
    server = uvicorn.Server(_config(ctx, host, port, "warning"))
    thread = threading.Thread(target=server.run, name="segflow-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    running = ThreadServer(ctx, f"http://{host}:{bound}", server, thread)
    try:
        yield running
    finally:
        running.stop()
        if close:
            with ctx.lock:
                ctx.app.close()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``python -m segflow.server`` as a child process on a free port."""

    def __init__(
        self, db: str | Path, *, port: int | None = None, args: Sequence[str] = ()
    ) -> None:
        self.db = Path(db)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> ServerProcess:
        import httpx

        cmd = [sys.executable, "-m", "segflow.server", "--db", str(self.db)]
        cmd += ["--port", str(self.port), "--log-level", "warning", *self.args]
        self.proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("the server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (what a crash looks like)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM: a graceful shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m segflow.server")
    p.add_argument("--db", default="segflow.duckdb")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    p.add_argument("--no-group-commit", action="store_true", help="one commit per request")
    p.add_argument("--scores-cron", default="0 3 * * *", help="scores refresh schedule (UTC)")
    p.add_argument("--no-scores", action="store_true", help="no scheduled scores refresh")
    a = p.parse_args(argv)
    try:
        settings = Settings(scores_cron=None if a.no_scores else a.scores_cron)
    except ValueError as e:
        p.error(str(e))
    ctx = make_context(a.db, settings=settings)
    if a.no_group_commit:
        from segflow.api.ingest import Ingestor

        ctx.ingestor = Ingestor(ctx)
        ctx.ingestor.group_commit = False
    run_server(a.db, a.host, a.port, log_level=a.log_level, ctx=ctx)


if __name__ == "__main__":
    main()
