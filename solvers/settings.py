"""Solver options as one typed, validated settings object."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["SolveSettings"]


@dataclass(frozen=True)
class SolveSettings:
    """Options shared by every alignment solver.

    Attributes
    ----------
    time_limit_s:
        Wall-clock limit for the whole solve, seconds; always honoured.
    seed:
        Random seed; with the same ``num_workers`` the same plan comes back, provided the
        solve ends on its deterministic limits (see ``deterministic_time``) or proves
        optimality rather than hitting the wall-clock limit.
    num_workers:
        CP-SAT search workers. Workers are interleaved deterministically.
    relative_gap:
        Stop once the proven gap (objective - bound) / objective is at most this.
    deterministic_time:
        CP-SAT's machine-independent work limit, roughly seconds on a fast core. ``None``
        uses ``time_limit_s``. Reproducible plans need this limit to bind before the
        wall-clock one.
    log_search:
        Forward CP-SAT's search log to the ``solvers`` logger at DEBUG level.
    cp_sat:
        Raw pass-through of CP-SAT parameters (``SatParameters`` field names), applied
        last.
    """

    time_limit_s: float = 60.0
    seed: int = 0
    num_workers: int = 2
    relative_gap: float = 0.01
    deterministic_time: float | None = None
    log_search: bool = False
    cp_sat: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        errors = []
        if not self.time_limit_s > 0:
            errors.append(f"time_limit_s must be > 0, got {self.time_limit_s}")
        if self.num_workers < 1:
            errors.append(f"num_workers must be >= 1, got {self.num_workers}")
        if not 0 <= self.relative_gap < 1:
            errors.append(f"relative_gap must be in [0, 1), got {self.relative_gap}")
        if self.deterministic_time is not None and not self.deterministic_time > 0:
            errors.append(f"deterministic_time must be > 0, got {self.deterministic_time}")
        if errors:
            raise ValueError("invalid SolveSettings: " + "; ".join(errors))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SolveSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown solver setting(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> SolveSettings:
        with open(path, "rb") as f:
            return cls.from_dict(tomllib.load(f))

    @property
    def effective_deterministic_time(self) -> float:
        return self.time_limit_s if self.deterministic_time is None else self.deterministic_time
