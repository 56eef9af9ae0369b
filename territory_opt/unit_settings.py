"""Settings of plans on geographic units (``plan --units``, TOML table ``[units]``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UnitSettings"]


@dataclass(frozen=True)
class UnitSettings:
    """How a unit plan is built; see ``territory_opt.unit_plan``.

    Attributes
    ----------
    id_col:
        The unit id column of the units file.
    adjacency:
        ``rook`` (units sharing a border) or ``queen`` (sharing at least a point).
    repair_geometry:
        Apply ``make_valid`` to invalid polygons, each repair reported, instead of stopping.
    bridge:
        Join separate pieces of the unit graph (islands, water gaps) to their nearest unit,
        each bridge reported; without it a graph in several pieces is an error.
    compactness:
        ``distance``: potential x km from each unit to its rep's home; ``hops``: potential x
        unit-graph hops to the rep's home unit.
    num_candidates:
        Nearest reps (by the compactness cost) each unit may go to. When no plan exists
        with that many (the LP relaxation is infeasible, or a unit or rep cannot be
        reached), the candidates are doubled, up to every rep of the segment, and each
        widening is reported in the manifest's warnings.
    segment:
        Plan only this segment; by default each segment's reps split the map in turn.
    contiguity:
        ``cuts`` (default, faster in our benchmark) or ``flow``; see ``solvers.contiguity``.
    """

    id_col: str = "unit_id"
    adjacency: str = "rook"
    repair_geometry: bool = False
    bridge: bool = True
    compactness: str = "distance"
    num_candidates: int = 8
    segment: str | None = None
    contiguity: str = "cuts"

    def __post_init__(self) -> None:
        bad = []
        if self.adjacency not in ("rook", "queen"):
            bad.append(f"units.adjacency must be 'rook' or 'queen', got {self.adjacency!r}")
        if self.compactness not in ("distance", "hops"):
            bad.append(f"units.compactness must be 'distance' or 'hops', got {self.compactness!r}")
        if self.contiguity not in ("cuts", "flow"):
            bad.append(f"units.contiguity must be 'cuts' or 'flow', got {self.contiguity!r}")
        if self.num_candidates < 1:
            bad.append(f"units.num_candidates must be >= 1, got {self.num_candidates}")
        if bad:
            raise ValueError("invalid unit settings: " + "; ".join(bad))
