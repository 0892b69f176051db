"""How the ingestion routes answer a request the writer refused: status, message,
errors and ``Retry-After``."""

from __future__ import annotations

from segflow.api.deps import Settings
from segflow.api.http import ApiError
from segflow.api.routes.ingest import refusal
from segflow.model.events import IngestProblem
from segflow.service.ingest import (
    BodyRefused,
    InvalidMessages,
    Overloaded,
    ShuttingDown,
    StoreFailed,
    Unstorable,
)

SETTINGS = Settings(retry_after_seconds=7)


def test_a_full_queue_is_429_and_a_stopped_or_failing_store_503_with_retry_after() -> None:
    overloaded = refusal(Overloaded(12_345), SETTINGS)
    assert (overloaded.status, overloaded.message, overloaded.errors) == (
        429,
        "ingestion is overloaded (12,345 events queued); retry later",
        [],
    )
    for refused, message in [
        (ShuttingDown(), "the server is shutting down"),
        (StoreFailed(), "storing the events failed; retry"),
    ]:
        err = refusal(refused, SETTINGS)
        assert (err.status, err.message, err.errors) == (503, message, [])
    for refused in (Overloaded(1), ShuttingDown(), StoreFailed()):
        assert refusal(refused, SETTINGS).headers == {"Retry-After": "7"}


def test_invalid_messages_are_400_naming_each_path() -> None:
    problems = [
        IngestProblem("timestamp", "not an instant", line=2),
        IngestProblem("", "missing userId or anonymousId", line=3),
    ]
    err = refusal(InvalidMessages(problems, "batch"), SETTINGS)
    assert err.status == 400 and err.headers is None
    assert err.message == "invalid message: batch[1].timestamp: not an instant (and 1 more)"
    assert err.errors == [
        {"path": "batch[1].timestamp", "message": "not an instant"},
        {"path": "batch[2]", "message": "missing userId or anonymousId"},
    ]
    single = refusal(InvalidMessages([IngestProblem("", "no event name")], ""), SETTINGS)
    assert single.message == "invalid message: no event name"
    assert single.errors == [{"path": "", "message": "no event name"}]


def test_a_request_the_store_cannot_take_is_400_with_the_store_error() -> None:
    err = refusal(Unstorable(ValueError("bad column " + "x" * 600)), SETTINGS)
    assert (err.status, err.message) == (400, "the request could not be stored: ValueError")
    [only] = err.errors
    assert only["path"] == ""
    assert only["message"].startswith("the request could not be stored: ValueError: bad column")
    assert len(only["message"]) == 500


def test_a_body_refused_by_its_parser_keeps_the_parser_answer() -> None:
    answer = ApiError(401, "unknown or revoked write key")
    assert refusal(BodyRefused(answer), SETTINGS) is answer
