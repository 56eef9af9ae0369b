"""The changes file of a rebalance: hires, leavers, leaves of absence and FTE changes.

One row per change, CSV or Parquet, columns ``change``, ``rep_id``, ``lat``, ``lon``,
``start_date``, ``end_date``, ``fte``, ``ramp_months`` (and optionally ``segment``):

========  ======================================================================
change    meaning and the columns it needs
========  ======================================================================
add       a new rep: ``rep_id`` (new), ``lat``/``lon`` home base; optional ``fte``
          (default 1), ``start_date``, ``ramp_months`` (default 0), ``segment``
          (default: the segment of the nearest existing rep)
remove    a leaver: ``rep_id``; the whole book must be re-homed
leave     temporary cover: ``rep_id``, ``start_date`` and ``end_date``; the book goes
          to cover reps for the leave and returns afterwards
fte       a change of capacity: ``rep_id`` and the new ``fte`` (> 0)
========  ======================================================================

:func:`read_changes` reads and checks the file against the team; every problem is listed
at once, each with its row, column and fix (:class:`~territory_opt.errors.InputError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError, InputProblem
from .io import read_table

__all__ = ["Change", "KINDS", "read_changes", "validate_changes", "ramp_factor"]

KINDS = ("add", "remove", "leave", "fte")
_OPTIONAL = ("lat", "lon", "start_date", "end_date", "fte", "ramp_months", "segment")


@dataclass(frozen=True)
class Change:
    """One validated change; ``row`` is its 1-based data row in the changes file."""

    kind: str
    rep_id: str
    row: int
    lat: float | None = None
    lon: float | None = None
    start_date: pd.Timestamp | None = None
    end_date: pd.Timestamp | None = None
    fte: float | None = None
    ramp_months: float = 0.0
    segment: str | None = None

    def describe(self) -> str:
        """The change in words, as the diff report and move reasons name it."""
        if self.kind == "add":
            when = f" from {self.start_date:%Y-%m-%d}" if self.start_date is not None else ""
            ramp = f", {self.ramp_months:g} months ramp" if self.ramp_months else ""
            return f"new rep {self.rep_id} (fte {self.fte:g}{ramp}){when}"
        if self.kind == "remove":
            return f"rep {self.rep_id} left"
        if self.kind == "leave":
            return (
                f"rep {self.rep_id} on leave {self.start_date:%Y-%m-%d} to {self.end_date:%Y-%m-%d}"
            )
        return f"rep {self.rep_id} to fte {self.fte:g}"


def ramp_factor(ramp_months: float) -> float:
    """Share of a full year's output a new rep delivers in its first 12 months.

    Productivity rises linearly from 0 at the start date to 1 after ``ramp_months`` and
    stays there; the factor is its mean over the 12 months from the start date:
    ``1 - ramp / 24`` for a ramp of up to 12 months, ``6 / ramp`` for a longer one (``1``
    without ramp). A 6-month ramp gives 0.75.
    """
    ramp = float(ramp_months)
    if ramp <= 0:
        return 1.0
    if ramp <= 12:
        return 1.0 - ramp / 24.0
    return 6.0 / ramp


def read_changes(path: str | Path, reps: pd.DataFrame) -> list[Change]:
    """Read the changes file and check it against ``reps`` (the team before the changes)."""
    frame = read_table(path, text_columns=("change", "rep_id", "segment"))
    return validate_changes(frame, reps, file=str(path))


def validate_changes(
    frame: pd.DataFrame, reps: pd.DataFrame, *, file: str = "changes"
) -> list[Change]:
    """Every change as a :class:`Change`; raises one :class:`InputError` listing every problem.

    Problems found: a missing ``change`` or ``rep_id`` column, an unknown kind, a
    ``remove``/``leave``/``fte`` of an unknown rep, an ``add`` of an existing rep or with no
    home base, a rep named twice, dates that are not dates or a leave that ends before it
    starts, an ``fte`` outside (0, 1.5], a negative ramp, and a change that leaves a
    segment without reps.
    """
    problems: list[InputProblem] = []

    def bad(row: int | None, column: str | None, message: str, fix: str) -> None:
        problems.append(InputProblem(file, message, fix, row=row, column=column))

    missing = [c for c in ("change", "rep_id") if c not in frame.columns]
    for c in missing:
        bad(None, c, f"required column '{c}' is missing", f"add a '{c}' column")
    if missing:
        raise InputError(problems)
    if frame.empty:
        bad(None, None, "the file lists no change", "add one row per hire, leaver, leave or fte")
        raise InputError(problems)
    frame = frame.reset_index(drop=True).copy()
    for c in _OPTIONAL:
        if c not in frame.columns:
            frame[c] = None
    known = set(reps["rep_id"].astype(str))
    segmented = "segment" in reps and reps["segment"].notna().any()
    seen: dict[str, int] = {}
    out: list[Change] = []

    def number(i: int, col: str, what: str) -> float | None:
        raw = frame.at[i, col]
        if raw is None or (isinstance(raw, float) and np.isnan(raw)) or str(raw).strip() == "":
            return None
        try:
            return float(raw)
        except (TypeError, ValueError):
            bad(i + 1, col, f"{what} '{raw}' is not a number", f"write a number in '{col}'")
            return None

    def date(i: int, col: str) -> pd.Timestamp | None:
        raw = frame.at[i, col]
        if raw is None or (isinstance(raw, float) and np.isnan(raw)) or str(raw).strip() == "":
            return None
        value = pd.to_datetime(raw, errors="coerce")
        if pd.isna(value):
            bad(i + 1, col, f"'{raw}' is not a date", "write dates as YYYY-MM-DD")
            return None
        return value

    for i in range(len(frame)):
        row = i + 1
        kind = str(frame.at[i, "change"]).strip().lower() if pd.notna(frame.at[i, "change"]) else ""
        rep = str(frame.at[i, "rep_id"]).strip() if pd.notna(frame.at[i, "rep_id"]) else ""
        if kind not in KINDS:
            bad(row, "change", f"unknown change '{kind}'", f"use one of {', '.join(KINDS)}")
            continue
        if not rep:
            bad(row, "rep_id", f"{kind} without a rep_id", "name the rep")
            continue
        if rep in seen:
            bad(
                row,
                "rep_id",
                f"rep '{rep}' is changed twice (first at row {seen[rep]})",
                "combine the changes into one row per rep",
            )
            continue
        seen[rep] = row
        lat, lon = number(i, "lat", "latitude"), number(i, "lon", "longitude")
        fte = number(i, "fte", "fte")
        ramp = number(i, "ramp_months", "ramp_months")
        start, end = date(i, "start_date"), date(i, "end_date")
        seg = frame.at[i, "segment"]
        seg = str(seg).strip() if pd.notna(seg) and str(seg).strip() else None
        if kind == "add":
            if rep in known:
                bad(
                    row,
                    "rep_id",
                    f"add of rep '{rep}', which is already in the team",
                    "give the new rep an unused rep_id",
                )
            if lat is None or lon is None:
                bad(
                    row,
                    "lat" if lat is None else "lon",
                    f"new rep '{rep}' has no home base",
                    "fill in lat and lon (WGS84 degrees) of the new rep's home base",
                )
            if lat is not None and not -90 <= lat <= 90:
                bad(row, "lat", f"latitude {lat} outside [-90, 90]", "use WGS84 degrees")
            if lon is not None and not -180 <= lon <= 180:
                bad(row, "lon", f"longitude {lon} outside [-180, 180]", "use WGS84 degrees")
            fte = 1.0 if fte is None else fte
            if seg is not None and segmented and seg not in set(reps["segment"].dropna()):
                bad(
                    row,
                    "segment",
                    f"segment '{seg}' is not a segment of the team "
                    f"({', '.join(sorted(set(reps['segment'].dropna())))})",
                    "use one of those segments",
                )
        else:
            if rep not in known:
                bad(
                    row,
                    "rep_id",
                    f"{kind} of unknown rep '{rep}'",
                    "use a rep_id of the plan's reps file (for a hire use change=add)",
                )
        if kind == "leave":
            if start is None or end is None:
                bad(
                    row,
                    "start_date" if start is None else "end_date",
                    f"leave of '{rep}' without a start and end date",
                    "fill in start_date and end_date (YYYY-MM-DD)",
                )
            elif end < start:
                bad(
                    row,
                    "end_date",
                    f"leave of '{rep}' ends ({end:%Y-%m-%d}) before it starts ({start:%Y-%m-%d})",
                    "swap or fix the dates",
                )
        if kind == "fte" and fte is None:
            bad(row, "fte", f"fte change of '{rep}' without an fte", "fill in the new fte")
        if kind in ("add", "fte") and fte is not None and not 0 < fte <= 1.5:
            fix = "use change=remove for a rep who leaves" if fte == 0 else "use 0 < fte <= 1.5"
            bad(row, "fte", f"fte {fte:g} outside (0, 1.5]", fix)
        if ramp is not None and ramp < 0:
            bad(row, "ramp_months", f"ramp_months {ramp:g} is negative", "use 0 or more months")
        out.append(
            Change(
                kind=kind,
                rep_id=rep,
                row=row,
                lat=lat,
                lon=lon,
                start_date=start,
                end_date=end,
                fte=fte if kind in ("add", "fte") else None,
                ramp_months=max(ramp or 0.0, 0.0),
                segment=seg,
            )
        )
    if not problems and segmented:
        gone = {c.rep_id for c in out if c.kind in ("remove", "leave")}
        added = {c.segment for c in out if c.kind == "add"}
        for seg, ids in reps.groupby("segment")["rep_id"]:
            if set(ids.astype(str)) <= gone and seg not in added:
                rows = [c.row for c in out if c.rep_id in set(ids.astype(str))]
                bad(
                    rows[0],
                    "rep_id",
                    f"the changes leave segment '{seg}' without any rep (its reps: "
                    f"{', '.join(sorted(ids.astype(str)))})",
                    "keep one of them, or add a rep with that segment",
                )
    if not problems and not segmented:
        if {c.rep_id for c in out if c.kind in ("remove", "leave")} >= known and not any(
            c.kind == "add" for c in out
        ):
            bad(None, "rep_id", "the changes leave the team without any rep", "add a rep")
    if problems:
        raise InputError(problems)
    return out
