"""Process wiring: open the store, build the live evaluator and the app, run uvicorn.

``run_server`` is what ``segflow serve`` (and the demo) run: two processes.  This
one, the core, binds the public port, hands it to an edge process
(``segflow.edge``) that answers HTTP there, and serves the app on a Unix socket for
the edge (plus the edge link, ``segflow.api.edgelink``).  ``edge=False`` serves the
app on the port from this one process.  For tests,
``serve_in_thread`` runs a real uvicorn server on a free 127.0.0.1 port inside the
test process, and ``ServerProcess`` runs one as a child process (``python -m
segflow.server``) that can be killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import uvicorn

from segflow.api.app import create_app
from segflow.api.deps import ServerContext, Settings
from segflow.api.fastlane import FastLane
from segflow.edge.__main__ import die_with
from segflow.realtime.timers import Clock, WallClock
from segflow.service.handle import Segflow

log = logging.getLogger("segflow.server")

CORE_KEEP_ALIVE_SECONDS: Final = 600
"""How long the core keeps an idle connection from the edge open (the edge drops
them after ``segflow.edge.app.KEEP_ALIVE_SECONDS``, well before)."""


def make_context(
    db: str | Path,
    *,
    clock: Clock | None = None,
    settings: Settings | None = None,
    live: bool = True,
) -> ServerContext:
    """Open ``db`` and build the server context (with the live evaluator when
    ``segflow.service.live`` is available and ``live``)."""
    app = Segflow(db)
    ctx = ServerContext(app=app, clock=clock or WallClock(), settings=settings or Settings())
    if live:
        try:
            from segflow.service.live import LiveEvaluator
        except ModuleNotFoundError as e:
            if e.name != "segflow.service.live":
                raise
        else:
            ctx.live = LiveEvaluator(app, ctx.clock)
    return ctx


def _config(
    ctx: ServerContext, host: str, port: int, log_level: str, uds: str | None = None
) -> uvicorn.Config:
    return uvicorn.Config(
        FastLane(create_app(ctx)),
        host=host,
        port=port,
        uds=uds,
        log_level=log_level,
        access_log=False,
        # segflow never reads the client address: no X-Forwarded-For parsing per request
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        # the edge's pooled connections to the core's socket: the core must not close
        # one the edge may be about to reuse (the edge lets them go sooner)
        timeout_keep_alive=CORE_KEEP_ALIVE_SECONDS if uds else 5,
    )


def run_server(
    db: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "info",
    settings: Settings | None = None,
    ctx: ServerContext | None = None,
    edge: bool = True,
) -> None:
    """Serve ``db`` until interrupted: the API, live evaluator and scheduler here, and
    (``edge``) the HTTP front in an edge process."""
    ctx = ctx or make_context(db, settings=settings)
    # The writer thread runs long stretches of Python (parsing, live evaluation); a
    # shorter GIL switch interval lets the event loop answer look-ups in between.
    sys.setswitchinterval(ctx.settings.switch_interval_seconds)
    try:
        if not edge:
            uvicorn.Server(_config(ctx, host, port, log_level)).run()
            return
        split = Split(ctx, host, port, log_level)
        split.edge.start(lambda: split.server.should_exit)
        try:
            split.server.run()
        finally:
            split.close()
    finally:
        with ctx.lock:
            ctx.app.close()


class Split:
    """The two-process server's parts: the public port bound here, the core's app on
    a Unix socket (``server``, not started) and the edge process (``edge``, not
    started), with the link socket's path in ``ctx.extra["edge_link"]``."""

    def __init__(self, ctx: ServerContext, host: str, port: int, log_level: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="segflow-")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family, backlog=2048)
        self.port: int = self.listener.getsockname()[1]
        core = os.path.join(self.dir, "core.sock")
        link = ctx.extra["edge_link"] = os.path.join(self.dir, "link.sock")
        self.server = uvicorn.Server(_config(ctx, host, port, log_level, uds=core))
        self.edge = EdgeProcess(self.listener, core, link, ctx.settings, log_level)
        ctx.extra["stop_edge"] = self.edge.stop  # by the app's shutdown, before its own

    def close(self) -> None:
        self.edge.stop()
        self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class EdgeProcess:
    """The edge child process, restarted if it dies while the core runs on."""

    def __init__(
        self, listener: socket.socket, core: str, link: str, settings: Settings, log_level: str
    ) -> None:
        self.cmd = [sys.executable, "-m", "segflow.edge", "--fd", str(listener.fileno())]
        self.cmd += ["--link", link, "--core", core, "--parent", str(os.getpid())]
        self.cmd += ["--max-message-bytes", str(settings.max_message_bytes)]
        self.cmd += ["--max-batch-bytes", str(settings.max_batch_bytes)]
        self.cmd += ["--retry-after", str(settings.retry_after_seconds)]
        self.cmd += ["--nice", str(settings.edge_niceness)]
        self.cmd += ["--log-level", log_level]
        self.fd = listener.fileno()
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self._lock = threading.Lock()
        """Makes "restart unless stopping" and "stop" exclusive: no edge outlives stop."""

    def start(self, exiting: Callable[[], bool]) -> None:
        self.proc = subprocess.Popen(self.cmd, pass_fds=[self.fd])
        # The watcher starts any replacement, and Linux ties an edge's life to the
        # thread that started it: the watcher waits on it until the edge is stopped.
        threading.Thread(
            target=self._watcher, args=(exiting,), name="segflow-edge-watch", daemon=True
        ).start()

    def _watcher(self, exiting: Callable[[], bool]) -> None:
        while True:
            proc = self.proc
            assert proc is not None
            code = proc.wait()
            time.sleep(0.5)  # Ctrl-C reaches both processes: let the core notice first
            with self._lock:
                if self.stopping or exiting():
                    return
                log.error("the edge process exited (%s); starting a new one", code)
                self.proc = subprocess.Popen(self.cmd, pass_fds=[self.fd])

    def stop(self) -> None:
        with self._lock:
            self.stopping = True
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class ThreadServer:
    """A running in-process server."""

    ctx: ServerContext
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread
    edge: EdgeProcess | None = None

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@contextmanager
def serve_in_thread(
    ctx: ServerContext,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    close: bool = True,
    edge: bool = False,
) -> Iterator[ThreadServer]:
    """A real uvicorn server for ``ctx`` on a free port, in a thread; stopped (and the
    store closed, unless ``close=False``) on exit.  ``edge``: the core's app in the
    thread behind an edge process on the port, as ``run_server`` runs them."""
    split = Split(ctx, host, port, "warning") if edge else None
    server = split.server if split else uvicorn.Server(_config(ctx, host, port, "warning"))
    thread = threading.Thread(target=server.run, name="segflow-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    if split is None:
        bound = server.servers[0].sockets[0].getsockname()[1]
    else:
        split.edge.start(lambda: server.should_exit)
        bound = split.port
    running = ThreadServer(
        ctx, f"http://{host}:{bound}", server, thread, split.edge if split else None
    )
    try:
        if split is not None:
            _wait_healthy(running.base_url, deadline)
        yield running
    finally:
        if split is not None:
            split.edge.stop()
        running.stop()
        if split is not None:
            split.close()
        if close:
            with ctx.lock:
                ctx.app.close()


def _wait_healthy(base_url: str, deadline: float, check: Callable[[], None] = lambda: None) -> None:
    """Poll ``/healthz`` until it answers 200 (``check`` raises if waiting is futile)."""
    import httpx

    while True:
        check()
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``python -m segflow.server`` as a child process on a free port."""

    def __init__(
        self,
        db: str | Path,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        supervise: bool = False,
    ) -> None:
        self.db = Path(db)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.args = list(args) + (["--supervise"] if supervise else [])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> ServerProcess:
        cmd = [sys.executable, "-m", "segflow.server", "--db", str(self.db)]
        cmd += ["--port", str(self.port), "--log-level", "warning", *self.args]
        proc = self.proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})

        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")

        try:
            _wait_healthy(self.base_url, time.monotonic() + timeout, alive)
        except RuntimeError:
            self.kill()
            raise
        return self

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


STOP_SIGNALS: Final = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
"""A core ending by one of these was stopped on purpose (uvicorn re-raises the signal
after its graceful shutdown): the supervisor does not restart it."""
CALM_SECONDS: Final = 60.0
"""A core that ran this long before dying is restarted at once; one dying sooner
waits longer each time (up to ``MAX_BACKOFF_SECONDS``): no busy crash loop."""
MAX_BACKOFF_SECONDS: Final = 30.0


def supervise(args: Sequence[str]) -> int:
    """Run the core (``python -m segflow.server ARGS``) and start it again whenever
    it dies by a signal it was not sent to stop (SIGKILL, SIGSEGV, an abort): a
    crash is repaired, and the edge, which dies with its core, comes back with it.
    SIGTERM/SIGINT/SIGHUP here stop the core gracefully.  Returns the core's exit
    code (0 when it was stopped by one of those signals, here or to itself)."""
    cmd = [sys.executable, "-m", "segflow.server", *args, "--supervisor", str(os.getpid())]
    stopping: list[int] = []
    proc: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _: object) -> None:
        stopping.append(signum)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    quick_deaths = 0
    while True:
        # its own process group: Ctrl-C reaches only this process, which passes it on
        # once (a second SIGINT makes uvicorn skip its graceful shutdown)
        proc = subprocess.Popen(cmd, process_group=0)
        if stopping:  # asked to stop while it was being started
            proc.send_signal(stopping[0])
        started = time.monotonic()
        code = proc.wait()
        if code < 0 and -code in STOP_SIGNALS:
            return 0
        if code >= 0 or stopping:
            return code if code >= 0 else 128 - code
        quick_deaths = quick_deaths + 1 if time.monotonic() - started < CALM_SECONDS else 0
        delay = min(MAX_BACKOFF_SECONDS, 0.25 * 2 ** max(0, quick_deaths - 1))
        log.error(
            "the core process died (%s); starting a new one in %.2f s",
            _signal_name(-code), delay,
        )  # fmt: skip
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.05)
        if stopping:
            return 0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m segflow.server")
    p.add_argument("--db", default="segflow.duckdb")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    p.add_argument("--no-group-commit", action="store_true", help="one commit per request")
    p.add_argument("--scores-cron", default="0 3 * * *", help="scores refresh schedule (UTC)")
    p.add_argument("--no-scores", action="store_true", help="no scheduled scores refresh")
    p.add_argument("--no-edge", action="store_true", help="one process: HTTP in the core")
    p.add_argument(
        "--supervise", action="store_true", help="run the core as a child, restarted if it dies"
    )
    p.add_argument("--supervisor", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    args = list(sys.argv[1:] if argv is None else argv)
    if a.supervise:
        sys.exit(supervise([x for x in args if x != "--supervise"]))
    if a.supervisor is not None:
        die_with(a.supervisor, signal.SIGTERM)
    try:
        settings = Settings(scores_cron=None if a.no_scores else a.scores_cron)
    except ValueError as e:
        p.error(str(e))
    ctx = make_context(a.db, settings=settings)
    if a.no_group_commit:
        ctx.ingestor = ctx.writer(group_commit=False)
    run_server(a.db, a.host, a.port, log_level=a.log_level, ctx=ctx, edge=not a.no_edge)


if __name__ == "__main__":
    main()
