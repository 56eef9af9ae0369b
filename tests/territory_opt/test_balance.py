"""Balance measures, per-rep targets, named accounts, forbidden pairs and transfer limits,
from the settings to a checked plan, on one tiny book drawn here (all on latitude 33.0)::

    lon    -84.00 -84.01 | -83.20 -83.10 -83.00 -83.01 -83.02 -83.03
    acct    A1     A2    |  A3     A4     A5     A6     A7     A8
    pot     20     10    |  5      5      5      5      5      5
    rep     R1 (at -84.00)                R2 (at -83.00)

Potential totals 60, so with equal capacity each rep's target is 30 and the default band
(+-5 %) is [28.5, 31.5]: with these amounts every rep holds exactly 30. Potential alone is
best served by R1 = {A1, A2}, R2 = the six small ones; that gives R1 2 accounts and R2 6.
Cost is potential x km, so when small accounts must go to R1 the westmost go first: A3,
A4, then A8, A7, A6, A5.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from solvers.align import solve
from solvers.check import check_plan
from solvers.cpsat.solve import Conflict, explain_infeasibility
from solvers.lp import solve_elastic, solve_relaxation
from solvers.settings import SolveSettings
from territory_opt.balance import keep_limits
from territory_opt.config import PlanConfig, TransferSettings
from territory_opt.errors import InfeasibleError, InputError
from territory_opt.feasibility import (
    explain_conflicts,
    explain_relaxation,
    indivisibility_limits,
    precheck,
)
from territory_opt.io import validate_inputs
from territory_opt.pipeline import plan
from territory_opt.problem import build_problem
from territory_opt.verify import verify_tables

IDS = [f"A{i}" for i in range(1, 9)]
SOLVE = SolveSettings(time_limit_s=10.0, num_workers=1, seed=2, relative_gap=0.0)
CONFIG = PlanConfig(solve=SOLVE)
POTENTIAL_ONLY = {"R1": ["A1", "A2"], "R2": ["A3", "A4", "A5", "A6", "A7", "A8"]}


def book(**columns) -> tuple[pd.DataFrame, pd.DataFrame]:
    accounts = pd.DataFrame(
        {
            "account_id": IDS,
            "lat": 33.0,
            "lon": [-84.00, -84.01, -83.20, -83.10, -83.00, -83.01, -83.02, -83.03],
            "potential": [20.0, 10.0] + [5.0] * 6,
        }
    )
    reps = pd.DataFrame({"rep_id": ["R1", "R2"], "lat": 33.0, "lon": [-84.0, -83.0]})
    for name, value in columns.items():
        table, col = name.split("__")
        (accounts if table == "acc" else reps)[col] = value
    return accounts, reps


def built(config=CONFIG, **columns):
    inputs = validate_inputs(*book(**columns))
    return build_problem(inputs.accounts, inputs.reps, inputs.accounts["potential"], config)


def as_plan(pp, by_rep: dict[str, list[str]]) -> np.ndarray:
    out = np.full(len(pp.account_ids), -1)
    for r, accs in by_rep.items():
        out[np.isin(pp.account_ids, accs)] = list(pp.rep_ids).index(r)
    return out


def by_rep(pp, assignment) -> dict[str, list[str]]:
    return {r: list(pp.account_ids[assignment == i]) for i, r in enumerate(pp.rep_ids)}


# --- several balance measures -------------------------------------------------------------


def test_account_count_band_rejects_a_potential_only_plan_and_the_engine_meets_both():
    # Target 4 accounts each, band +-30 % = [2.8, 5.2]: R1 must hold 3 to 5 accounts and
    # exactly 30 potential, so R1 = {A1, A3, A4}: A1 and the two small ones nearest R1.
    config = replace(CONFIG, balance={"account_count": 0.3})
    pp = built(config)
    p = pp.problem
    assert p.measure_names == ("potential", "account_count")
    np.testing.assert_allclose(p.measure_target, [[30, 4], [30, 4]])
    np.testing.assert_allclose(p.measure_lo[:, 1], [2.8, 2.8])
    report = check_plan(p, as_plan(pp, POTENTIAL_ONLY))
    assert [(v.rule, v.rep, v.measure, round(v.amount, 9)) for v in report.violations] == [
        ("band", 0, "account_count", 0.8),  # R1: 2 accounts, minimum 2.8
        ("band", 1, "account_count", 0.8),  # R2: 6 accounts, maximum 5.2
    ]
    res = solve(p, SOLVE)
    assert check_plan(p, res.assignment).ok
    assert by_rep(pp, res.assignment) == {
        "R1": ["A1", "A3", "A4"],
        "R2": ["A2", "A5", "A6", "A7", "A8"],
    }


def test_workload_and_column_measures_by_hand():
    # Tier A: 6 visits, B 4, others 1 (default); 60-minute visits: hours = visits.
    config = replace(CONFIG, balance={"workload_h": 0.5, "employees": 0.5})
    pp = built(
        config,
        acc__tier=["A", "B", "C", None, None, None, None, None],
        acc__employees=[100, 10, 10, 10, 10, 10, 10, 10],
    )
    p = pp.problem
    assert p.measure_names == ("potential", "workload_h", "employees")
    np.testing.assert_allclose(p.unit_measure[:, 1], [6, 4, 2, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(p.measure_target[:, 2], [85, 85])
    # A1's 100 employees against a target of 85 per rep: the tightest band is 100/85 - 1.
    limits = indivisibility_limits(pp)
    assert limits["employees"] == pytest.approx(100 / 85 - 1)
    assert limits["potential"] == 0.0


def test_an_indivisible_extra_measure_is_explained():
    config = replace(CONFIG, balance={"employees": 0.1})
    pp = built(config, acc__employees=[100, 10, 10, 10, 10, 10, 10, 10])
    (f,) = [f for f in precheck(pp, 0.05) if f.rule == "band"]
    assert f.message == (
        "Account 'A1' has employees 100, above the employees band maximum of every rep it can "
        "go to; the tightest employees band any plan can meet is +-17.65 %."
    )
    assert f.fix == "widen balance.employees to at least 0.1765."


def test_bad_balance_measures_are_named():
    config = replace(CONFIG, balance={"revenue_2024": 0.1, "industry": 0.1})
    with pytest.raises(InputError) as err:
        built(config, acc__industry=["retail"] * 8)
    messages = [p.message for p in err.value.problems]
    assert messages[0].startswith(
        "balance measure 'revenue_2024' is neither account_count, workload_h nor an accounts "
        "column (columns: "
    )
    assert messages[1] == (
        "balance measure 'industry': accounts column 'industry' is not a number in 8 row(s)"
    )
    with pytest.raises(ValueError, match="the potential band is set by 'tolerance'"):
        PlanConfig(balance={"potential": 0.1})
    with pytest.raises(ValueError, match=r"balance.account_count must be a share > 0"):
        PlanConfig.from_dict({"balance": {"account_count": 0}})


# --- per-rep targets ----------------------------------------------------------------------


def test_a_half_time_rep_gets_half_the_target_of_a_full_time_one():
    # Weights 1 and 0.5: targets 60 x 2/3 = 40 and 60 x 1/3 = 20, both reps full time.
    pp = built(rep__target_weight=[1.0, 0.5])
    np.testing.assert_allclose(pp.problem.measure_target[:, 0], [40, 20])
    res = solve(pp.problem, SOLVE)
    report = check_plan(pp.problem, res.assignment)
    assert report.ok
    np.testing.assert_allclose(report.rep_measure[:, 0], [40, 20])


def test_target_weight_is_validated():
    with pytest.raises(InputError) as err:
        validate_inputs(*book(rep__target_weight=[1.0, None]))
    assert "rep has no target_weight while others have one" in str(err.value)
    with pytest.raises(InputError, match="target weight below 0"):
        validate_inputs(*book(rep__target_weight=[1.0, -0.5]))


# --- named accounts and forbidden pairs -----------------------------------------------------


def test_named_account_is_fixed_and_made_a_candidate():
    # With one candidate per account and a short rep reach, A5's only candidate is R2;
    # naming it to R1 adds the pair and fixes it there.
    config = replace(CONFIG, num_candidates=1, rep_reach=0.1, named_accounts={"A5": "R1"})
    pp = built(config)
    p = pp.problem
    a5 = IDS.index("A5")
    assert list(p.candidates(a5)) == [0, 1]
    assert p.fixed_rep[a5] == 0
    loose = built(replace(config, named_accounts={}))
    assert list(loose.problem.candidates(a5)) == [1]


def test_named_accounts_errors_are_listed_together():
    config = replace(
        CONFIG,
        named_accounts={"A9": "R1", "A1": "R7", "A2": "R2"},
        forbidden_pairs=[["A2", "R2"]],
    )
    with pytest.raises(InputError) as err:
        built(config, acc__current_rep_id=["R1"] * 8, acc__locked=[False, True] + [False] * 6)
    messages = [p.message for p in err.value.problems]
    assert messages == [
        "named_accounts: 'A9' = 'R1': unknown account_id",
        "named_accounts: 'A1' = 'R7': unknown rep_id",
        "named_accounts: 'A2' = 'R2': the account is locked to its current rep 'R1'",
        "forbidden_pairs[0] = ['A2', 'R2']: the same pair is in named_accounts",
    ]


def test_named_accounts_beyond_a_band_are_explained():
    # A1, A2 and A3 named to R1 hold 35, above its band maximum 31.5.
    config = replace(CONFIG, named_accounts={"A1": "R1", "A2": "R1", "A3": "R1"})
    (f,) = [f for f in precheck(built(config), 0.05) if f.rule == "band"]
    assert f.message.startswith("Rep 'R1' has locked and named accounts with potential 35,")
    assert f.fix.endswith("or widen tolerance to at least 0.1667.")


def test_forbidden_pair_is_never_a_candidate():
    config = replace(CONFIG, forbidden_pairs=[["A1", "R1"]])
    pp = built(config)
    assert list(pp.problem.candidates(0)) == [1]
    res = solve(pp.problem, SOLVE)
    assert res.assignment[0] == 1 and check_plan(pp.problem, res.assignment).ok


def test_forbidden_pairs_that_leave_no_candidate_or_name_nobody():
    with pytest.raises(InputError, match="leave account 'A1' without any candidate rep"):
        built(replace(CONFIG, forbidden_pairs=[["A1", "R1"], ["A1", "R2"]]))
    with pytest.raises(InputError, match=r"forbidden_pairs\[0\] = \['A1', 'R9'\]: unknown rep"):
        built(replace(CONFIG, forbidden_pairs=[["A1", "R9"]]))
    with pytest.raises(ValueError, match=r"forbidden_pairs\[0\] must be \[account_id, rep_id\]"):
        PlanConfig(forbidden_pairs=[["A1"]])


# --- transfer limits ----------------------------------------------------------------------
# Today R1 holds the whole book (8 accounts, potential 60); R2 is new and holds nothing.


def transfer(**shares) -> PlanConfig:
    return replace(CONFIG, transfer=TransferSettings(**shares))


ALL_ON_R1 = {"acc__current_rep_id": ["R1"] * 8}


def test_keep_arrays_by_hand():
    config = transfer(max_accounts_share_per_rep=0.3, max_potential_share_total=0.5)
    keep = keep_limits(np.zeros(8, int), np.full(8, 7.5), 2, config)
    # 8 x 0.7 = 5.6 accounts: 6 whole accounts stay; half of 60 potential stays overall.
    np.testing.assert_allclose(keep["keep_min"], [[6, 0], [0, 0]])
    np.testing.assert_allclose(keep["keep_min_total"], [0, 30])
    assert keep_limits(np.zeros(8, int), np.ones(8), 2, CONFIG) == {}
    with pytest.raises(ValueError, match=r"transfer.max_accounts_share_total must be in \[0, 1\]"):
        PlanConfig.from_dict({"transfer": {"max_accounts_share_total": 1.5}})


def test_engine_honours_per_rep_transfer_limits_and_reports_kept_shares():
    # At most half of R1's accounts and potential may leave: R1 keeps >= 4 accounts and
    # >= 30 potential, and holds exactly 30: A2 and the four small ones nearest R1 (A1
    # would leave room for only two small ones: 3 accounts).
    config = transfer(max_accounts_share_per_rep=0.5, max_potential_share_per_rep=0.5)
    pp = built(config, **ALL_ON_R1)
    np.testing.assert_allclose(pp.problem.keep_min, [[4, 30], [0, 0]])
    (v,) = check_plan(pp.problem, as_plan(pp, POTENTIAL_ONLY)).violations
    assert (v.rule, v.rep, v.measure, v.amount) == ("transfer", 0, "accounts", 2.0)
    inputs = validate_inputs(*book(**ALL_ON_R1))
    result = plan(inputs, config)
    assert by_rep(pp, result.result.assignment) == {
        "R1": ["A2", "A3", "A4", "A7", "A8"],
        "R2": ["A1", "A5", "A6"],
    }
    terr = result.territories.set_index("rep_id")
    assert terr.loc["R1", "kept_accounts_share"] == pytest.approx(5 / 8)
    assert terr.loc["R1", "kept_potential_share"] == pytest.approx(0.5)
    assert np.isnan(terr.loc["R2", "kept_accounts_share"])


def test_transfer_against_band_is_explained_with_the_arithmetic():
    # R1 must keep 60 % of 60 = 36, but its band maximum is 31.5: allowing 1 - 31.5 / 60 =
    # 47.5 % to leave, or a band of 36 / 30 - 1 = 20 %, would fix it.
    config = transfer(max_potential_share_per_rep=0.4)
    (f,) = [f for f in precheck(built(config, **ALL_ON_R1), 0.05) if f.rule == "transfer"]
    assert f.message == (
        "Rep 'R1' must keep at least 60.0 % of its current potential 60, that is 36, but its "
        "potential band maximum is 32: the two cannot both hold."
    )
    assert f.fix == (
        "relax transfer.max_potential_share_per_rep to at least 0.4750, or widen tolerance "
        "to at least 0.2000."
    )
    with pytest.raises(InfeasibleError, match="must keep at least 60.0 %"):
        plan(validate_inputs(*book(**ALL_ON_R1)), config)


def test_transfer_against_capacity_is_explained_and_its_fixes_work():
    # R1 must keep 4 of its 8 accounts (50 %) within its band maximum 31.5. The least hours
    # that takes, keeping accounts in part or whole, is an LP, solved here independently
    # (scipy); R1 gets 1 h less than that.
    from scipy.optimize import linprog

    config = transfer(max_accounts_share_per_rep=0.5)
    p = built(config, **ALL_ON_R1).problem
    hours = p.pair_workload_h[p.pair_index(np.arange(8), np.zeros(8, int))]
    pot = p.unit_measure[:, 0]
    lp = linprog(hours, A_ub=[-np.ones(8), pot], b_ub=[-4.0, 31.5], bounds=(0, 1))
    # Equal target weights: the targets (and bands) must not follow the capacities.
    tight = {"rep__capacity_h": [lp.fun - 1.0, 1e6], "rep__target_weight": [1.0, 1.0]}
    (f,) = [f for f in precheck(built(config, **ALL_ON_R1, **tight), 0.05) if f.rule == "transfer"]
    assert f.message.startswith("Rep 'R1' must keep at least 50.0 % of its current accounts")
    least = float(f.message.split("takes is ")[1].split(" h")[0].replace(",", ""))
    assert least == pytest.approx(lp.fun, abs=0.05)
    assert "by 1.0 h" in f.message
    with pytest.raises(InfeasibleError, match="the least workload that takes is"):
        plan(validate_inputs(*book(**ALL_ON_R1, **tight)), config)
    # Either suggested fix clears the finding.
    share = float(f.fix.split("max_accounts_share_per_rep to at least ")[1].split(";")[0])
    assert 0.5 < share <= 1.0
    relaxed = transfer(max_accounts_share_per_rep=share + 1e-4)
    left = precheck(built(relaxed, **ALL_ON_R1, **tight), 0.05)
    assert not [g for g in left if g.rule == "transfer"]
    capacity = float(f.fix.split("capacity_h to at least ")[1].rstrip(".").replace(",", ""))
    more = {"rep__capacity_h": [capacity + 0.05, 1e6], "rep__target_weight": [1.0, 1.0]}
    left = precheck(built(config, **ALL_ON_R1, **more), 0.05)
    assert not [g for g in left if g.rule == "transfer"]


def test_overall_transfer_limit_against_bands_is_explained():
    config = transfer(max_potential_share_total=0.4)
    (f,) = [f for f in precheck(built(config, **ALL_ON_R1), 0.05) if f.rule == "transfer"]
    assert f.message == (
        "At most 32 of the current potential 60 can stay with its current rep within their "
        "band maxima, but transfer.max_potential_share_total requires 36 (60.0 %) to stay."
    )
    assert f.fix.startswith("relax transfer.max_potential_share_total to at least 0.4750")


def test_transfer_conflict_the_arithmetic_misses_is_named_by_lp_and_cp_sat():
    # R1 must keep 7 of its 8 accounts, but any 7 hold at least 35 > 31.5 potential. No
    # balance measure counts accounts, so only the solvers can see it.
    config = transfer(max_accounts_share_per_rep=0.125)
    pp = built(config, **ALL_ON_R1)
    assert not [f for f in precheck(pp, 0.05) if f.rule == "transfer"]
    assert solve_relaxation(pp.problem).status == "INFEASIBLE"
    (f,) = [f for f in explain_relaxation(pp, solve_elastic(pp.problem)) if f.rule == "transfer"]
    assert f.message.startswith("Rep 'R1': even the best fractional plan keeps only 6 of the")
    assert "short of the transfer minimum 7" in f.message
    core = explain_infeasibility(pp.problem, SOLVE)
    assert Conflict("transfer", rep=0, measure=0) in core
    words = [f.message for f in explain_conflicts(pp, core) if f.rule == "transfer"]
    assert words == [
        "Rep 'R1': the transfer limit (keep at least 7 of its current accounts) is part of a "
        "set of rules that cannot hold together."
    ]


def test_same_seed_same_plan_with_every_rule():
    config = replace(
        transfer(max_accounts_share_per_rep=0.5),
        balance={"account_count": 0.5},
        named_accounts={"A3": "R1"},
        forbidden_pairs=[["A8", "R1"]],
    )
    inputs = validate_inputs(*book(**ALL_ON_R1))
    first, second = plan(inputs, config), plan(inputs, config)
    np.testing.assert_array_equal(first.result.assignment, second.result.assignment)
    assert first.check.ok
    assert "account_count_dev_pct" in first.territories


def test_verify_recomputes_balance_and_kept_columns():
    config = replace(
        transfer(max_accounts_share_per_rep=0.5), balance={"account_count": 0.5, "workload_h": 1}
    )
    inputs = validate_inputs(*book(**ALL_ON_R1))
    result = plan(inputs, config)
    terr = result.territories
    assert list(terr.columns[11:]) == [
        "account_count",
        "target_account_count",
        "account_count_dev_pct",
        "balance_workload_h",
        "target_balance_workload_h",
        "balance_workload_h_dev_pct",
        "kept_accounts_share",
        "kept_potential_share",
    ]
    args = (inputs.accounts, inputs.reps, config, result.manifest["plan"]["quota_total"])
    assert verify_tables(result.assignments, terr, *args) == []
    for col, value in (("target_account_count", 3.0), ("kept_potential_share", 0.9)):
        bad = terr.assign(**{col: value})
        (error,) = verify_tables(result.assignments, bad, *args)
        assert error.startswith(f"territories.{col} disagrees")
