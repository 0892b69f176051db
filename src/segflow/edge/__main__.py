"""``python -m segflow.edge``: the edge process, started by the core (``run_server``).

It serves the listening socket the core bound and passed down (``--fd``), so a port
in use fails in the core, before anything starts, and the port stays bound while an
edge is replaced.  It dies with the core: Linux sends it SIGKILL when its parent
exits, however the parent exits.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Sequence

import uvicorn

from segflow.edge.app import Edge, EdgeSettings

_PR_SET_PDEATHSIG = 1


def die_with(parent: int, sig: int = signal.SIGKILL) -> None:
    """Get ``sig`` when the parent process exits (Linux ``prctl``; elsewhere the
    parent stops its child itself)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):  # not Linux: the parent stops the child on exit
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m segflow.edge")
    p.add_argument("--fd", type=int, required=True, help="the listening socket's descriptor")
    p.add_argument("--link", required=True, help="the core's link socket")
    p.add_argument("--core", required=True, help="the core's HTTP socket")
    p.add_argument("--parent", type=int, required=True, help="the core's process id")
    p.add_argument("--max-message-bytes", type=int, default=32 * 1024)
    p.add_argument("--max-batch-bytes", type=int, default=500 * 1024)
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--nice", type=int, default=0, help="this process's niceness")
    p.add_argument("--log-level", default="info")
    a = p.parse_args(argv)
    die_with(a.parent)
    if a.nice:
        # ahead of the core's writer and anything else on a busy machine: a look-up or
        # a request handed over waits less for a CPU (needs root or CAP_SYS_NICE to
        # go below 0; without it the edge runs at the core's niceness)
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, a.nice)
    settings = EdgeSettings(
        link=a.link,
        core=a.core,
        max_message_bytes=a.max_message_bytes,
        max_batch_bytes=a.max_batch_bytes,
        retry_after_seconds=a.retry_after,
    )
    listener = socket.socket(fileno=a.fd)
    config = uvicorn.Config(
        Edge(settings),
        log_level=a.log_level,
        access_log=False,
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
