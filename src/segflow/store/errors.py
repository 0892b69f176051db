"""What a store's engine reports in terms the service and shells know, so that they
handle an unopenable file or a failing disk without importing the engine."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The store cannot be opened (not a store, unreadable): the engine's reason."""


class StoreHeld(StoreUnavailable):
    """Another process (most often a running server) holds the store file."""

    def __init__(self, reason: str, pid: str | None) -> None:
        super().__init__(reason)
        self.pid = pid
        """The holder's process id, when the engine names it."""


class StorageFailed(Exception):
    """A write failed for a reason of the machine (the disk, the file), not of what
    was written: retrying later may succeed."""
