"""A Spark directory per test (a temporary directory, removed afterwards), on the one
Spark context of the process (its JVM starts once: that takes seconds), and a Spark
Connect server on this machine for the tests of ``sc://`` URLs."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pyspark

from segflow.store.spark.batch import SparkBatch
from segflow.store.spark.connection import open_session
from segflow.store.spark.load import copy_store
from tests.directory_engine import DirectoryEngine, directory_engine

MASTER = "local[2]"


@contextmanager
def spark_engine() -> Iterator[DirectoryEngine]:
    with directory_engine(
        "spark", lambda path: open_session(f"spark://{MASTER}{path}"), copy_store, SparkBatch
    ) as engine:
        yield engine


_server: subprocess.Popen[bytes] | None = None
_address = ""


def _start(port: int, out: IO[bytes]) -> subprocess.Popen[bytes]:
    home = Path(pyspark.__file__).parent
    return subprocess.Popen(
        [
            str(home / "bin" / "spark-submit"),
            *("--class", "org.apache.spark.sql.connect.service.SparkConnectServer"),
            *("--master", MASTER),
            *("--conf", f"spark.connect.grpc.binding.port={port}"),
            *("--conf", "spark.connect.grpc.binding.address=127.0.0.1"),
            *("--conf", "spark.ui.enabled=false"),
            *("--conf", "spark.driver.host=127.0.0.1"),
            *("--conf", "spark.driver.bindAddress=127.0.0.1"),
            "spark-internal",
        ],
        env={**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def connect_server() -> str:
    """The ``sc://127.0.0.1:port`` address of a Spark Connect server (a JVM of its own,
    started on first use by PySpark's ``spark-submit`` and stopped when the process
    exits)."""
    global _server, _address
    if _server is not None and _server.poll() is None:
        return _address
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(tempfile.mkdtemp(prefix="segflow-spark-connect-")) / "server.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        server = _server = _start(port, out)
    atexit.register(_stop_server, server)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Spark Connect server exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
        except OSError:
            time.sleep(0.5)
            continue
        _address = f"sc://127.0.0.1:{port}"
        return _address
    _stop_server(server)
    raise RuntimeError(f"the Spark Connect server did not open port {port} in 120 s")


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
