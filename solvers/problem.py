"""The alignment problem as immutable arrays.

An alignment assigns every unit (an account, or a geographic unit) to exactly one rep,
choosing only among the unit's candidate reps. Candidates are stored sparsely in CSR
form by unit, so a problem with a million accounts and ten candidates each holds ten
million pairs rather than a billion.

Balance measures (potential first, then any others) are summed per rep and must lie in a
per-rep band ``[measure_lo, measure_hi]``. Workload depends on the pair (travel depends on
the rep's base), so it is stored per pair and bounded by each rep's capacity.

Transfer ("keep") limits bound disruption against the current alignment: of each rep's
current book (the units whose ``current_rep`` is that rep) at least ``keep_min`` of every
keep measure must stay with the rep, and overall at least ``keep_min_total`` must stay with
its current rep. A unit stays when it is assigned to its current rep.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["AlignmentProblem"]


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class AlignmentProblem:
    """Arrays describing one alignment; validated when built, varied with ``replace()``.

    Attributes
    ----------
    cand_indptr, cand_rep:
        CSR candidate lists: the candidate reps of unit ``u`` are
        ``cand_rep[cand_indptr[u]:cand_indptr[u + 1]]`` (sorted, no repeats).
    pair_cost:
        Objective coefficient per candidate pair (for the default objective:
        potential x travel km, currency*km). Minimised.
    pair_workload_h:
        Hours per year the unit costs the rep of that pair (visits plus travel).
    unit_measure:
        ``(num_units, num_measures)`` values summed per rep (measure 0 is potential,
        currency per year).
    measure_lo, measure_hi:
        ``(num_reps, num_measures)`` inclusive band per rep and measure. ``-inf`` or
        ``+inf`` switch a side off.
    measure_target:
        ``(num_reps, num_measures)`` target the band is centred on, for reporting.
    capacity_h:
        ``(num_reps,)`` productive hours per year; ``+inf`` switches the limit off.
    fixed_rep:
        ``(num_units,)`` rep index a unit is locked to, or -1.
    current_rep:
        ``(num_units,)`` rep index of the current alignment, or -1 (used for disruption
        statistics and as a warm start).
    measure_names:
        One name per measure column, for messages.
    keep_measure:
        ``(num_units, num_keep)`` non-negative amounts counted by the transfer limits (for
        example 1 per unit for the account count, and potential). Default: no columns, no
        transfer limits.
    keep_min:
        ``(num_reps, num_keep)`` least amount of each keep measure of the rep's current book
        that must stay with the rep (0 switches a limit off).
    keep_min_total:
        ``(num_keep,)`` least amount that must stay with its current rep over all units.
    keep_names:
        One name per keep column, for messages.
    """

    cand_indptr: np.ndarray
    cand_rep: np.ndarray
    pair_cost: np.ndarray
    pair_workload_h: np.ndarray
    unit_measure: np.ndarray
    measure_lo: np.ndarray
    measure_hi: np.ndarray
    measure_target: np.ndarray
    capacity_h: np.ndarray
    fixed_rep: np.ndarray
    current_rep: np.ndarray
    measure_names: tuple[str, ...] = ("potential",)
    keep_measure: np.ndarray | None = None
    keep_min: np.ndarray | None = None
    keep_min_total: np.ndarray | None = None
    keep_names: tuple[str, ...] = ()
    _pair_unit: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        num_keep = len(self.keep_names)
        n = np.asarray(self.cand_indptr).size - 1
        r = np.asarray(self.capacity_h).size
        defaults = {
            "keep_measure": (n, num_keep),
            "keep_min": (r, num_keep),
            "keep_min_total": (num_keep,),
        }
        for name, shape in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(shape))
        conv = {
            "cand_indptr": np.int64,
            "cand_rep": np.int32,
            "pair_cost": np.float64,
            "pair_workload_h": np.float64,
            "unit_measure": np.float64,
            "measure_lo": np.float64,
            "measure_hi": np.float64,
            "measure_target": np.float64,
            "capacity_h": np.float64,
            "fixed_rep": np.int32,
            "current_rep": np.int32,
            "keep_measure": np.float64,
            "keep_min": np.float64,
            "keep_min_total": np.float64,
        }
        for name, dtype in conv.items():
            object.__setattr__(self, name, _frozen(np.asarray(getattr(self, name), dtype=dtype)))
        if self.unit_measure.ndim == 1:
            object.__setattr__(self, "unit_measure", _frozen(self.unit_measure[:, None]))
        for name in ("measure_lo", "measure_hi", "measure_target"):
            arr = getattr(self, name)
            if arr.ndim == 1:
                object.__setattr__(self, name, _frozen(arr[:, None]))
        object.__setattr__(self, "measure_names", tuple(self.measure_names))
        object.__setattr__(self, "keep_names", tuple(self.keep_names))
        self._validate()
        pair_unit = np.repeat(np.arange(self.num_units, dtype=np.int32), np.diff(self.cand_indptr))
        object.__setattr__(self, "_pair_unit", _frozen(pair_unit))

    # --- sizes ---------------------------------------------------------------
    @property
    def num_units(self) -> int:
        return int(self.cand_indptr.size - 1)

    @property
    def num_reps(self) -> int:
        return int(self.capacity_h.size)

    @property
    def num_pairs(self) -> int:
        return int(self.cand_rep.size)

    @property
    def num_measures(self) -> int:
        return int(self.unit_measure.shape[1])

    @property
    def num_keep(self) -> int:
        """Number of transfer-limit measures (0: no transfer limits)."""
        return int(self.keep_measure.shape[1])

    @property
    def stay_pairs(self) -> np.ndarray:
        """Indices of the pairs that keep a unit with its current rep."""
        return np.flatnonzero(self.cand_rep == self.current_rep[self._pair_unit])

    def kept(self, assignment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Amounts that stay: ``(num_reps, num_keep)`` per rep of its current book, and
        ``(num_keep,)`` overall, for a plan given as a rep index per unit."""
        a = np.asarray(assignment)
        stay = (a == self.current_rep) & (self.current_rep >= 0)
        per_rep = np.zeros((self.num_reps, self.num_keep))
        for t in range(self.num_keep):
            per_rep[:, t] = np.bincount(
                a[stay], weights=self.keep_measure[stay, t], minlength=self.num_reps
            )
        return per_rep, per_rep.sum(axis=0)

    def current_book(self) -> np.ndarray:
        """``(num_reps, num_keep)``: each rep's current book in every keep measure."""
        cur = self.current_rep
        has = cur >= 0
        out = np.zeros((self.num_reps, self.num_keep))
        for t in range(self.num_keep):
            out[:, t] = np.bincount(
                cur[has], weights=self.keep_measure[has, t], minlength=self.num_reps
            )
        return out

    @property
    def pair_unit(self) -> np.ndarray:
        """Unit index of each candidate pair (the CSR row, expanded)."""
        return self._pair_unit

    def candidates(self, unit: int) -> np.ndarray:
        """Candidate rep indices of one unit."""
        return self.cand_rep[self.cand_indptr[unit] : self.cand_indptr[unit + 1]]

    def pair_index(self, unit: np.ndarray, rep: np.ndarray) -> np.ndarray:
        """Index of the pair (unit, rep) for each entry, or -1 where rep is not a candidate."""
        unit = np.asarray(unit, dtype=np.int64)
        rep = np.asarray(rep, dtype=np.int64)
        out = np.full(unit.shape, -1, dtype=np.int64)
        # Candidate lists are short and sorted: a vectorised scan over the max list length
        # beats a Python loop over units.
        lengths = np.diff(self.cand_indptr)[unit]
        start = self.cand_indptr[unit]
        for offset in range(int(lengths.max(initial=0))):
            ok = (offset < lengths) & (out < 0)
            idx = start[ok] + offset
            hit = self.cand_rep[idx] == rep[ok]
            sel = np.flatnonzero(ok)[hit]
            out[sel] = idx[hit]
        return out

    def with_bands(self, lo: np.ndarray, hi: np.ndarray) -> AlignmentProblem:
        """The same problem with other measure bands."""
        return replace(self, measure_lo=lo, measure_hi=hi)

    # --- validation -----------------------------------------------------------
    def _validate(self) -> None:
        problems: list[str] = []
        n, r = self.num_units, self.num_reps
        p = self.cand_rep.size
        if n < 0 or self.cand_indptr[0] != 0 or self.cand_indptr[-1] != p:
            problems.append("cand_indptr must start at 0 and end at len(cand_rep)")
        if np.any(np.diff(self.cand_indptr) < 0):
            problems.append("cand_indptr must be non-decreasing")
        if p and (self.cand_rep.min() < 0 or self.cand_rep.max() >= r):
            problems.append(f"cand_rep holds rep indices outside [0, {r})")
        for name in ("pair_cost", "pair_workload_h"):
            arr = getattr(self, name)
            if arr.shape != (p,):
                problems.append(f"{name} must have shape ({p},), got {arr.shape}")
            elif not np.all(np.isfinite(arr)) or np.any(arr < 0):
                problems.append(f"{name} must be finite and non-negative")
        m = self.unit_measure.shape[1]
        if self.unit_measure.shape[0] != n:
            problems.append(f"unit_measure must have {n} rows")
        if not np.all(np.isfinite(self.unit_measure)) or np.any(self.unit_measure < 0):
            problems.append("unit_measure must be finite and non-negative")
        for name in ("measure_lo", "measure_hi", "measure_target"):
            if getattr(self, name).shape != (r, m):
                problems.append(f"{name} must have shape ({r}, {m})")
        if len(self.measure_names) != m:
            problems.append(f"measure_names must name {m} measures")
        if self.fixed_rep.shape != (n,) or self.current_rep.shape != (n,):
            problems.append(f"fixed_rep and current_rep must have shape ({n},)")
        if np.any(np.isnan(self.measure_lo)) or np.any(np.isnan(self.measure_hi)):
            problems.append("measure_lo and measure_hi must not be NaN (use +-inf for no limit)")
        elif self.measure_lo.shape == self.measure_hi.shape and np.any(
            self.measure_lo > self.measure_hi
        ):
            problems.append("measure_lo must not exceed measure_hi")
        if np.any(np.isnan(self.capacity_h)) or np.any(self.capacity_h < 0):
            problems.append("capacity_h must be non-negative")
        t = len(self.keep_names)
        for name, shape in (
            ("keep_measure", (n, t)),
            ("keep_min", (r, t)),
            ("keep_min_total", (t,)),
        ):
            arr = getattr(self, name)
            if arr.shape != shape:
                problems.append(f"{name} must have shape {shape} (one column per keep name)")
            elif not np.all(np.isfinite(arr)) or np.any(arr < 0):
                problems.append(f"{name} must be finite and non-negative")
        if np.any((self.current_rep < -1) | (self.current_rep >= r)):
            problems.append(f"current_rep holds rep indices outside [-1, {r})")
        if problems:
            raise ValueError("invalid AlignmentProblem: " + "; ".join(problems))
        if p:
            # Sorted, unique candidates per unit: consecutive pairs inside a row must increase.
            same_row = np.diff(np.repeat(np.arange(n), np.diff(self.cand_indptr))) == 0
            if np.any(np.diff(self.cand_rep)[same_row] <= 0):
                raise ValueError("invalid AlignmentProblem: candidates of a unit must be sorted")
        empty = np.flatnonzero(np.diff(self.cand_indptr) == 0)
        if empty.size:
            raise ValueError(
                f"invalid AlignmentProblem: {empty.size} unit(s) have no candidate rep "
                f"(first: unit {int(empty[0])})"
            )
        fixed = np.flatnonzero(self.fixed_rep >= 0)
        if fixed.size and np.any(self.pair_index(fixed, self.fixed_rep[fixed]) < 0):
            raise ValueError("invalid AlignmentProblem: a fixed unit's rep is not a candidate")
