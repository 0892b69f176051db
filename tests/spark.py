"""A Spark directory per test (a temporary directory, removed afterwards), on the one
Spark context of the process (its JVM starts once: that takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
