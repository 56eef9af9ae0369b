"""Loading and validating the input files: CSV or Parquet in, validated DataFrames out.

Validation collects every problem in every file and raises one :class:`InputError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError, InputProblem

__all__ = ["Inputs", "COLUMNS", "read_table", "load_inputs", "validate_inputs"]

# Every column the inputs may carry, by table; ``[columns.<table>]`` in the config maps
# these names to a file's own names.
COLUMNS = {
    "accounts": (
        "account_id",
        "lat",
        "lon",
        "potential",
        "segment",
        "tier",
        "industry",
        "employees",
        "annual_revenue",
        "current_rep_id",
        "locked",
        "unit_id",
    ),
    "reps": ("rep_id", "lat", "lon", "fte", "capacity_h", "segment", "start_date", "target_weight"),
    "history": ("account_id", "year", "bookings", "rep_id"),
}
_TEXT = ("account_id", "rep_id", "current_rep_id", "segment", "unit_id")

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}
_MAX_LISTED = 20  # per check, so a file with 10,000 bad rows stays readable


@dataclass(frozen=True, eq=False)
class Inputs:
    """Validated inputs. ``accounts`` and ``reps`` are indexed by id; ``history`` is optional.

    ``sources`` maps each table name to the file it came from (for messages and the
    manifest).
    """

    accounts: pd.DataFrame
    reps: pd.DataFrame
    history: pd.DataFrame | None
    sources: dict[str, str]


def read_table(path: str | Path, text_columns=_TEXT) -> pd.DataFrame:
    """Read a CSV or Parquet file; ids and categorical columns stay strings."""
    path = Path(path)
    if not path.exists():
        raise InputError([InputProblem(str(path), "file not found", "check the path")])
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".gz"):
            return pd.read_csv(
                path,
                dtype=dict.fromkeys(text_columns, str),
                keep_default_na=True,
            )
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(
            [InputProblem(str(path), f"cannot be read ({exc})", "save it as UTF-8 CSV or Parquet")]
        ) from exc
    raise InputError(
        [InputProblem(str(path), f"unknown file type '{suffix}'", "use .csv or .parquet")]
    )


class _Collector:
    def __init__(self) -> None:
        self.problems: list[InputProblem] = []

    def add(self, file, message, fix, row=None, column=None) -> None:
        self.problems.append(InputProblem(file, message, fix, row, column))

    def rows(self, file, mask, column, message, fix) -> None:
        """One problem per offending row (the first few), plus a count of the rest."""
        idx = np.flatnonzero(np.asarray(mask))
        for i in idx[:_MAX_LISTED]:
            self.add(file, message, fix, row=int(i) + 1, column=column)
        if idx.size > _MAX_LISTED:
            self.add(
                file,
                f"{idx.size - _MAX_LISTED} more row(s) with the same problem",
                fix,
                column=column,
            )


def _require(c: _Collector, df: pd.DataFrame, file: str, columns: list[str]) -> bool:
    missing = [col for col in columns if col not in df.columns]
    for col in missing:
        c.add(
            file,
            f"required column '{col}' is missing (columns present: "
            f"{', '.join(map(str, df.columns))})",
            f"add a '{col}' column",
            column=col,
        )
    return not missing


def _ids(c: _Collector, df: pd.DataFrame, file: str, col: str) -> None:
    ids = df[col]
    c.rows(
        file,
        ids.isna() | (ids.astype(str).str.strip() == ""),
        col,
        "missing id",
        "give every row an id",
    )
    dup = ids.duplicated(keep="first") & ids.notna()
    for i in np.flatnonzero(dup.to_numpy())[:_MAX_LISTED]:
        first = int(np.flatnonzero((ids == ids.iloc[i]).to_numpy())[0]) + 1
        c.add(
            file,
            f"duplicate id '{ids.iloc[i]}' (first seen at row {first})",
            "make ids unique",
            row=int(i) + 1,
            column=col,
        )


def _ids_and_place(c: _Collector, df: pd.DataFrame, file: str, id_col: str) -> None:
    """Unique text ids and WGS84 coordinates, checked and typed in place."""
    _ids(c, df, file, id_col)
    df[id_col] = df[id_col].astype(str)
    df["lat"] = _numeric(c, df, file, "lat", lo=-90, hi=90, what="latitude")
    df["lon"] = _numeric(c, df, file, "lon", lo=-180, hi=180, what="longitude")


def _numeric(c, df, file, col, *, lo=None, hi=None, allow_nan=False, what="value"):
    values = pd.to_numeric(df[col], errors="coerce")
    bad_text = values.isna() & df[col].notna()
    c.rows(file, bad_text, col, f"{what} is not a number", f"write a number in '{col}'")
    if not allow_nan:
        c.rows(file, df[col].isna(), col, f"{what} is missing", f"fill in '{col}'")
    if lo is not None:
        c.rows(file, values < lo, col, f"{what} below {lo}", f"use a value >= {lo}")
    if hi is not None:
        c.rows(file, values > hi, col, f"{what} above {hi}", f"use a value <= {hi}")
    return values


def _bool(c, df, file, col) -> pd.Series:
    raw = df[col]
    if raw.dtype == bool:
        return raw
    text = raw.fillna("").astype(str).str.strip().str.lower()
    bad = ~text.isin(_TRUE | _FALSE)
    c.rows(file, bad, col, "not a true/false value", "write true or false")
    return text.isin(_TRUE)


def validate_inputs(
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    history: pd.DataFrame | None = None,
    *,
    sources: dict[str, str] | None = None,
) -> Inputs:
    """Check every rule on raw frames and return typed, id-indexed frames.

    Raises :class:`InputError` listing every problem found in every table.
    """
    sources = {"accounts": "accounts", "reps": "reps", "history": "history"} | (sources or {})
    fa, fr, fh = sources["accounts"], sources["reps"], sources["history"]
    c = _Collector()
    accounts = accounts.reset_index(drop=True).copy()
    reps = reps.reset_index(drop=True).copy()
    acc_ok = _require(c, accounts, fa, ["account_id", "lat", "lon"])
    rep_ok = _require(c, reps, fr, ["rep_id", "lat", "lon"])
    if rep_ok:
        _ids_and_place(c, reps, fr, "rep_id")
        if "fte" in reps:
            reps["fte"] = _numeric(
                c, reps, fr, "fte", lo=0, hi=1.5, allow_nan=True, what="fte"
            ).fillna(1.0)
        else:
            reps["fte"] = 1.0
        if "capacity_h" in reps:
            reps["capacity_h"] = _numeric(
                c, reps, fr, "capacity_h", lo=0, allow_nan=True, what="capacity (hours/year)"
            )
        if "target_weight" in reps:
            weight = _numeric(
                c, reps, fr, "target_weight", lo=0, allow_nan=True, what="target weight"
            )
            given = weight.notna()
            if given.any() and not given.all():
                c.rows(
                    fr,
                    (~given).to_numpy(),
                    "target_weight",
                    "rep has no target_weight while others have one",
                    "give every rep a target_weight, or leave the column out (targets then "
                    "follow capacity)",
                )
            reps["target_weight"] = weight
        if "segment" in reps:
            seg = reps["segment"]
            has = seg.notna() & (seg.astype(str).str.strip() != "")
            if has.any() and not has.all():
                c.rows(
                    fr,
                    ~has,
                    "segment",
                    "rep has no segment while others have one",
                    "give every rep a segment, or leave the column empty for all",
                )
            reps["segment"] = seg.where(has, None)
        if "start_date" in reps:
            dates = pd.to_datetime(reps["start_date"], errors="coerce")
            c.rows(
                fr,
                dates.isna() & reps["start_date"].notna(),
                "start_date",
                "not a date",
                "write dates as YYYY-MM-DD",
            )
            reps["start_date"] = dates
    if acc_ok:
        _ids_and_place(c, accounts, fa, "account_id")
        if "potential" in accounts:
            accounts["potential"] = _numeric(
                c, accounts, fa, "potential", lo=0, what="potential (currency/year)"
            )
        for col in ("employees", "annual_revenue"):
            if col in accounts:
                accounts[col] = _numeric(c, accounts, fa, col, lo=0, allow_nan=True, what=col)
        if "locked" in accounts:
            accounts["locked"] = _bool(c, accounts, fa, "locked")
        else:
            accounts["locked"] = False
        if "current_rep_id" in accounts:
            cur = accounts["current_rep_id"]
            cur = cur.where(cur.notna() & (cur.astype(str).str.strip() != ""), None)
            accounts["current_rep_id"] = cur
            if rep_ok:
                known = set(reps["rep_id"])
                unknown = cur.notna() & ~cur.isin(known)
                c.rows(
                    fa,
                    unknown.to_numpy(),
                    "current_rep_id",
                    "unknown rep id",
                    f"use a rep_id from {fr} or leave it empty",
                )
        else:
            accounts["current_rep_id"] = None
        c.rows(
            fa,
            (accounts["locked"] & accounts["current_rep_id"].isna()).to_numpy(),
            "locked",
            "locked account without a current_rep_id",
            "give it a current_rep_id or unlock it",
        )
        if rep_ok and "segment" in reps and reps["segment"].notna().any():
            if "segment" not in accounts:
                c.add(
                    fa,
                    "reps have segments but accounts have no 'segment' column",
                    "add a 'segment' column to the accounts",
                    column="segment",
                )
            else:
                covered = set(reps["segment"].dropna())
                seg = accounts["segment"]
                c.rows(
                    fa,
                    (~seg.isin(covered)).to_numpy(),
                    "segment",
                    f"no rep covers this segment (rep segments: {sorted(covered)})",
                    "use a segment some rep covers, or add a rep for it",
                )
                if "current_rep_id" in accounts:
                    rep_seg = reps.set_index("rep_id")["segment"]
                    cur_seg = accounts["current_rep_id"].map(rep_seg)
                    mism = cur_seg.notna() & (cur_seg != seg) & accounts["locked"]
                    c.rows(
                        fa,
                        mism.to_numpy(),
                        "current_rep_id",
                        "locked to a rep of another segment",
                        "unlock it or move it to a rep of its segment",
                    )
    if history is not None:
        history = history.reset_index(drop=True).copy()
        if _require(c, history, fh, ["account_id", "year", "bookings"]):
            history["account_id"] = history["account_id"].astype(str)
            history["year"] = _numeric(c, history, fh, "year", lo=1900, hi=2100, what="year")
            history["bookings"] = _numeric(
                c, history, fh, "bookings", lo=0, what="bookings (currency)"
            )
            if acc_ok:
                unknown = ~history["account_id"].isin(set(accounts["account_id"]))
                c.rows(
                    fh,
                    unknown.to_numpy(),
                    "account_id",
                    "unknown account id",
                    f"use an account_id from {fa} or drop the row",
                )
            if "rep_id" in history and rep_ok:
                hr = history["rep_id"]
                # Former reps may appear in history; only ids that are empty are suspicious.
                history["rep_id"] = hr.where(hr.notna(), None).astype(object)
    if c.problems:
        raise InputError(c.problems)
    accounts = accounts.set_index("account_id", drop=False)
    reps = reps.set_index("rep_id", drop=False)
    if history is not None:
        history["year"] = history["year"].astype(int)
    return Inputs(accounts, reps, history, sources)


def load_inputs(
    accounts: str | Path,
    reps: str | Path,
    history: str | Path | None = None,
    *,
    columns: dict[str, dict[str, str]] | None = None,
) -> Inputs:
    """Read and validate the input files (CSV or Parquet); raises :class:`InputError`.

    ``columns`` maps, per table, our column names to the file's own, e.g.
    ``{"accounts": {"account_id": "AccountId", "lat": "Latitude"}}``.
    """
    columns = columns or {}
    problems: list[InputProblem] = []
    frames = {}
    for name, path in (("accounts", accounts), ("reps", reps), ("history", history)):
        if path is None:
            frames[name] = None
            continue
        mapping = columns.get(name, {})
        text = [mapping.get(c, c) for c in _TEXT]
        try:
            frame = read_table(path, text)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        for ours, theirs in mapping.items():
            if theirs not in frame.columns:
                problems.append(
                    InputProblem(
                        str(path),
                        f"column '{theirs}' (mapped to '{ours}' in [columns.{name}]) is "
                        f"missing (columns present: {', '.join(map(str, frame.columns))})",
                        "fix the mapping or add the column",
                        column=theirs,
                    )
                )
        frames[name] = frame.rename(columns={t: o for o, t in mapping.items()})
    if problems:
        raise InputError(problems)
    sources = {
        k: str(v)
        for k, v in (("accounts", accounts), ("reps", reps), ("history", history))
        if v is not None
    }
    return validate_inputs(frames["accounts"], frames["reps"], frames["history"], sources=sources)
