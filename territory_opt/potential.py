"""Account potential (currency/year) when the accounts do not carry it.

Two estimators follow the scikit-learn contract (numeric ``X``, ``fit`` returns ``self``,
fitted attributes end in ``_``), so they can be cross-validated and swapped:

- :class:`PeerQuantileRegressor`: potential is a high quantile of current spend among peers
  (same segment and industry, similar size), the "what similar customers already spend"
  view of whitespace.
- :class:`FirmographicIndexRegressor`: a log-linear index of firmographics fitted to current
  spend, scaled up to a high quantile of wallet share.

:func:`estimate_potential` builds their inputs from the accounts and history frames.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge
from sklearn.utils.validation import check_is_fitted, validate_data

from .config import PotentialSettings
from .errors import InputError, InputProblem

__all__ = ["PeerQuantileRegressor", "FirmographicIndexRegressor", "estimate_potential"]

log = logging.getLogger(__name__)


class PeerQuantileRegressor(RegressorMixin, BaseEstimator):
    """Quantile of spend among peers.

    ``X``: every column but the last is an integer group code (for example segment, then
    industry); the last column is size (employees), binned into ``size_bins`` quantile
    bins. A peer group with fewer than ``min_peers`` accounts falls back to a coarser one:
    first the size bin is dropped, then the last code, and so on, down to all accounts.

    Parameters
    ----------
    quantile:
        The quantile of spend among peers taken as potential (0.75 = upper quartile).
    min_peers:
        Smallest peer group trusted on its own.
    size_bins:
        Number of size bins (quantiles of the size column).
    """

    def __init__(self, quantile: float = 0.75, min_peers: int = 20, size_bins: int = 5):
        self.quantile = quantile
        self.min_peers = min_peers
        self.size_bins = size_bins

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        # It predicts a high quantile of peers, not the mean: R^2 is not its measure.
        tags.regressor_tags.poor_score = True
        return tags

    def _keys(self, x: np.ndarray) -> list[np.ndarray]:
        """Peer-group keys from finest to coarsest, as int64 rows."""
        codes = np.rint(x[:, :-1]).astype(np.int64)
        size_bin = np.searchsorted(self.size_edges_, x[:, -1], side="right")
        levels = [np.c_[codes, size_bin]]
        for k in range(codes.shape[1], -1, -1):
            levels.append(codes[:, :k] if k else np.zeros((x.shape[0], 1), dtype=np.int64))
        return levels

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        edges = np.quantile(X[:, -1], np.linspace(0, 1, self.size_bins + 1)[1:-1])
        self.size_edges_ = np.unique(edges)
        self.tables_ = []
        for keys in self._keys(X):
            df = pd.DataFrame(keys).assign(y=y)
            grouped = df.groupby(list(range(keys.shape[1])))["y"]
            table = pd.DataFrame({"q": grouped.quantile(self.quantile), "n": grouped.size()})
            self.tables_.append(table[table["n"] >= self.min_peers]["q"])
        self.global_ = float(np.quantile(y, self.quantile))
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        out = np.full(X.shape[0], np.nan)
        for keys, table in zip(self._keys(X), self.tables_, strict=True):
            todo = np.isnan(out)
            if not todo.any():
                break
            idx = pd.MultiIndex.from_arrays(keys[todo].T) if keys.shape[1] > 1 else keys[todo, 0]
            out[todo] = table.reindex(idx).to_numpy()
        return np.where(np.isnan(out), self.global_, out)


class FirmographicIndexRegressor(RegressorMixin, BaseEstimator):
    """Log-linear firmographic index, scaled to a high quantile of wallet share.

    Fits ``log1p(spend) ~ ridge(X)``; the index is ``expm1(prediction)``; potential is the
    index times the ``quantile`` of ``spend / index`` among accounts with spend, so a typical
    account reaches its potential only at the wallet share of the best ``1 - quantile``.
    ``X`` is numeric (log sizes and one-hot categories).
    """

    def __init__(self, alpha: float = 1.0, quantile: float = 0.75):
        self.alpha = alpha
        self.quantile = quantile

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        if np.any(y < 0):
            raise ValueError("spend must be non-negative")
        self.ridge_ = Ridge(alpha=self.alpha).fit(X, np.log1p(y))
        index = np.expm1(self.ridge_.predict(X))
        ratio = y[(y > 0) & (index > 0)] / index[(y > 0) & (index > 0)]
        self.uplift_ = float(np.quantile(ratio, self.quantile)) if ratio.size else 1.0
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.maximum(np.expm1(self.ridge_.predict(X)), 0.0) * self.uplift_


def _codes(series: pd.Series) -> np.ndarray:
    return pd.Categorical(series.fillna("(none)").astype(str)).codes.astype(float)


def _spend(accounts: pd.DataFrame, history: pd.DataFrame | None) -> pd.Series:
    """Bookings in the latest history year per account (0 where none)."""
    if history is None or history.empty:
        return pd.Series(np.nan, index=accounts.index)
    last = history[history["year"] == history["year"].max()]
    spend = last.groupby("account_id")["bookings"].sum()
    return spend.reindex(accounts.index).fillna(0.0)


def estimate_potential(
    accounts: pd.DataFrame, history: pd.DataFrame | None, settings: PotentialSettings
) -> tuple[pd.Series, str]:
    """Potential per account (currency/year) and the method used.

    Uses the ``potential`` column when asked or when present under ``auto``; otherwise fits
    the chosen estimator to the latest year's bookings.
    """
    method = settings.method
    if method == "auto":
        method = "column" if "potential" in accounts else "peer_quantile"
    if method == "column":
        if "potential" not in accounts:
            raise InputError(
                [
                    InputProblem(
                        "accounts",
                        "potential.method is 'column' but there is no 'potential' column",
                        "add a potential column or set potential.method to peer_quantile",
                        column=None,
                    )
                ]
            )
        return accounts["potential"].astype(float), "column"
    spend = _spend(accounts, history)
    if spend.isna().all():
        raise InputError(
            [
                InputProblem(
                    "accounts",
                    "no 'potential' column and no history to estimate it from",
                    "add a potential column, or pass --history with bookings",
                    column="potential",
                )
            ]
        )
    size = accounts["employees"] if "employees" in accounts else pd.Series(1.0, accounts.index)
    size = size.fillna(size.median()).to_numpy(float)
    if method == "peer_quantile":
        cols = [_codes(accounts[c]) for c in ("segment", "industry") if c in accounts]
        x = np.column_stack([*cols, size]) if cols else size[:, None]
        est = PeerQuantileRegressor(settings.quantile, settings.min_peers, settings.size_bins)
    else:
        parts = [np.log1p(size)[:, None]]
        if "annual_revenue" in accounts:
            rev = accounts["annual_revenue"].fillna(accounts["annual_revenue"].median())
            parts.append(np.log1p(rev.to_numpy(float))[:, None])
        for c in ("segment", "industry"):
            if c in accounts:
                parts.append(pd.get_dummies(accounts[c].astype(str)).to_numpy(float))
        x = np.hstack(parts)
        est = FirmographicIndexRegressor(quantile=settings.quantile)
    y = spend.to_numpy(float)
    pred = est.fit(x, y).predict(x)
    if settings.floor_at_spend:
        # An account already spending more than its peers' quantile has at least that.
        pred = np.maximum(pred, y)
    log.info("potential estimated with %s: total %.4g", method, pred.sum())
    return pd.Series(pred, index=accounts.index, name="potential"), method
