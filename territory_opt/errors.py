"""Errors a user sees: every problem at once, each with where it is and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InputProblem", "InputError", "InfeasibleError", "Finding"]


@dataclass(frozen=True)
class InputProblem:
    """One thing wrong with an input file. ``row`` is the 1-based data row (header excluded),
    or ``None`` for file-level problems."""

    file: str
    message: str
    fix: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.message}. Fix: {self.fix}"


class InputError(ValueError):
    """Bad input: lists every problem found, so one run shows them all."""

    def __init__(self, problems: list[InputProblem], limit: int = 50) -> None:
        self.problems = list(problems)
        lines = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more problem(s)")
        super().__init__(
            f"{len(self.problems)} input problem(s) found:\n  - " + "\n  - ".join(lines)
        )


@dataclass(frozen=True)
class Finding:
    """Why no plan can exist: the rule, who is affected, the arithmetic and what would fix it."""

    rule: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message} Fix: {self.fix}"


class InfeasibleError(RuntimeError):
    """The settings admit no plan; ``findings`` say which rule, who, and by how much."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = list(findings)
        super().__init__(
            "no plan can satisfy these settings:\n  - "
            + "\n  - ".join(str(f) for f in self.findings)
        )
