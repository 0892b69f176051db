"""Errors that name what is wrong and where."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: a JSON path (``condition.all[2].within``) and what is wrong there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True, slots=True)
class NameWarning:
    """A definition names something the store has never seen (it is saved, but the
    condition most likely matches nobody): where, what, and the closest known names."""

    path: str
    message: str
    suggestions: list[str]

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "message": self.message, "suggestions": self.suggestions}

    def __str__(self) -> str:
        hint = f" (closest: {', '.join(self.suggestions)})" if self.suggestions else ""
        return f"{self.path}: {self.message}{hint}"


class DefinitionError(ValueError):
    """A segment definition that cannot be accepted; carries every problem found."""

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(str(p) for p in problems))
