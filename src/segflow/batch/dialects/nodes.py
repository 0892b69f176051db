"""segflow's expression nodes, and what every dialect's generator shares: a node no
dialect may silently skip (``UnsupportedNode``) and the ``transforms`` that build a
dialect's spelling table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError
from sqlglot.generator import Generator

Transform = Callable[[Generator, Any], str]


class UnsupportedNode(UnsupportedError):
    """A plan needs a node the target engine has no same-valued spelling for."""

    def __init__(self, node: str, dialect: str) -> None:
        super().__init__(
            f"{node} is not supported on {dialect}: segflow's batch compiler has no"
            f" {dialect} spelling for it (segflow.batch.dialects)"
        )
        self.node = node
        self.dialect = dialect


# -- segflow's nodes ------------------------------------------------------------


class BucketHash(exp.Func):
    """The first four bytes of ``md5(this)`` (of its UTF-8 text), big-endian, as an
    unsigned integer: the hash ``model.bucket.bucket_of`` reads."""


class ParseTimestamp(exp.Func):
    """An ISO-8601 text as a naive UTC timestamp; NULL when it is not one."""


class TopValue(exp.AggFunc):
    """The most frequent non-NULL value of ``this`` over the rows where ``where``
    holds (every row when absent); ties go to the smallest value."""

    arg_types = {"this": True, "where": False}  # noqa: RUF012 (sqlglot's own convention)


class JsonField(exp.Func):
    """A value read from the JSON document ``this`` at the JSON pointer ``path``
    (a string literal).  The subclasses say which type they keep."""

    arg_types = {"this": True, "path": True}  # noqa: RUF012 (sqlglot's own convention)


class JsonNumber(JsonField):
    """The field as a DOUBLE when it is a JSON number, else NULL."""


class JsonString(JsonField):
    """The field as text when it is a JSON string, else NULL."""


class JsonBoolean(JsonField):
    """The field as a BOOLEAN when it is a JSON boolean, else NULL."""


class JsonExists(JsonField):
    """Whether the document has the field (a JSON null counts as present)."""


class JsonText(JsonField):
    """The field's JSON text (NULL when absent): one spelling per value, whatever its type."""


class AsJsonText(exp.Func):
    """A scalar value's JSON text, spelled as ``JsonText`` spells the same value."""


class Latest(exp.AggFunc):
    """``this`` of the row whose ``expressions`` (compared in order, each non-NULL) are
    greatest: several of them over one ordering pick their values from the same row
    wherever the orderings' ties hold equal values."""

    arg_types = {"this": True, "expressions": True}  # noqa: RUF012 (sqlglot's own convention)


class ChainStep(exp.Expression):
    """A query: each row ``(key, ts)`` of ``this`` (a step's events) with the ``start``
    of the latest row of ``chain`` (``key``, ``ts`` and, unless ``first``, ``start``)
    of the same key and a strictly earlier ``ts``; rows with none are left out.  A
    first chain's rows start their own chains (``start`` is their ``ts``)."""

    arg_types = {"this": True, "chain": True, "key": True, "first": True}  # noqa: RUF012


NODES: tuple[type[exp.Expression], ...] = (
    BucketHash,
    ParseTimestamp,
    TopValue,
    JsonNumber,
    JsonString,
    JsonBoolean,
    JsonExists,
    JsonText,
    AsJsonText,
    Latest,
    ChainStep,
)
"""Every segflow node: a dialect spells each or raises ``UnsupportedNode`` for it."""


def dialect_name(gen: Generator) -> str:
    return type(gen.dialect).__name__.removeprefix("Segflow")


def _lacks(gen: Generator, e: exp.Expression) -> str:
    raise UnsupportedNode(type(e).__name__, dialect_name(gen))


def _reported(node: type[exp.Expression], base: Transform | None) -> Transform:
    """A sqlglot node the dialect has no same-valued spelling for: raised on the batch
    compiler's path (which generates with ``ErrorLevel.IMMEDIATE``), reported as
    sqlglot reports its own gaps elsewhere (transpiling text keeps working)."""

    def sql(gen: Generator, e: Any) -> str:
        if gen.unsupported_level == ErrorLevel.IMMEDIATE:
            raise UnsupportedNode(node.__name__, dialect_name(gen))
        gen.unsupported(f"{node.__name__} is not supported on {dialect_name(gen)}")
        if base is not None:
            return base(gen, e)
        method = getattr(gen, f"{e.key}_sql", None)
        return method(e) if method is not None else gen.function_fallback_sql(e)

    return sql


def chain_key(e: ChainStep, table: str) -> exp.Column:
    return exp.column(e.args["key"].copy(), table=exp.to_identifier(table, quoted=True))


def quoted_column(name: str, table: str | None = None) -> exp.Column:
    return exp.column(
        exp.to_identifier(name, quoted=True),
        table=exp.to_identifier(table, quoted=True) if table else None,
    )


def chain_start(e: ChainStep, table: str) -> exp.Column:
    return quoted_column("ts" if e.args["first"] else "start", table)


def transforms(
    base: dict[type[exp.Expression], Transform],
    spelled: dict[type[exp.Expression], Transform],
    lacking: tuple[type[exp.Expression], ...] = (),
) -> dict[type[exp.Expression], Transform]:
    """A dialect's TRANSFORMS: its base's, every segflow node it does not spell
    raising, ``lacking`` (sqlglot nodes it has no same-valued spelling for) refused."""
    return {
        **base,
        **{n: _lacks for n in NODES},
        **{n: _reported(n, base.get(n)) for n in lacking},
        **spelled,
    }
