"""A strategy driven by a trained scikit-learn classifier, stored with skops (never pickle).

``train_model(features_df, horizon, path)`` fits a classifier that predicts the sign of the
``horizon``-bar forward return from feature columns and saves it with ``skops.io.dump``.
``load_model(path)`` first lists the file's types that skops does not trust by default and
refuses the file (:class:`ModelLoadError`, naming the path and the types) if any is outside
the allow-list; only then is it loaded, with exactly those types trusted. A corrupt file,
or an object that is not a probabilistic classifier trained on named features, is refused
too. scikit-learn and skops are the ``ml`` extra and imported only here, lazily.

:class:`ModelStrategy` predicts ``p_up`` per bar and emits when the predicted side changes:
BUY when ``p_up >= buy_threshold``, SELL when ``p_up <= 1 - buy_threshold``; strength
``|2 p_up - 1|``, confidence ``max(p_up, 1 - p_up)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from algostream.model.enums import Side
from algostream.model.records import FeatureVector, Signal
from algostream.signals.base import Strategy, StrategyConfig, feature
from algostream.signals.errors import (
    MissingExtraError,
    ModelLoadError,
    ModelTrainError,
    StrategyStateError,
)

#: Types a model file may contain beyond skops' defaults (sklearn estimators, numpy, ...).
DEFAULT_TRUSTED_TYPES: tuple[str, ...] = ("sklearn.tree._tree.Tree",)

#: Scale-free features used for training by default (no raw price levels).
DEFAULT_MODEL_FEATURES: tuple[str, ...] = (
    "rsi",
    "macd_hist",
    "bb_pctb",
    "bb_width",
    "log_return",
    "volatility",
    "vwap_dist",
)

Estimator = Literal["logistic", "gradient_boosting"]


def _skops_io() -> ModuleType:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise MissingExtraError(
            f"skops is not installed ({exc}); install the ml extra: pip install 'algostream[ml]'"
        ) from None
    module: ModuleType = sio
    return module


def load_model(path: str | Path, trusted_types: Sequence[str] = DEFAULT_TRUSTED_TYPES) -> Any:
    """Load a skops model file, refusing untrusted types outside ``trusted_types``."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(path, "no such file; train one with train_model()")
    sio = _skops_io()
    try:
        untrusted = tuple(sorted(sio.get_untrusted_types(file=path)))
    except Exception as exc:  # skops raises zipfile/json/key errors on damaged files
        raise ModelLoadError(path, f"not a readable skops file ({exc!r})") from None
    refused = tuple(t for t in untrusted if t not in trusted_types)
    if refused:
        raise ModelLoadError(
            path,
            f"contains untrusted type(s) {list(refused)}; allowed: {sorted(trusted_types)}. "
            "Only load model files you produced; extend trusted_types only after review.",
            refused,
        )
    try:
        model = sio.load(path, trusted=list(untrusted))
    except Exception as exc:  # any failure to rebuild the object is a refusal
        raise ModelLoadError(path, f"failed to load ({exc!r})") from None
    _check_classifier(path, model)
    return model


def _check_classifier(path: Path, model: Any) -> None:
    missing = [
        a for a in ("predict_proba", "classes_", "feature_names_in_") if not hasattr(model, a)
    ]
    if missing:
        raise ModelLoadError(
            path,
            f"{type(model).__name__} is not a fitted classifier trained on named features "
            f"(missing {missing})",
        )
    if 1 not in list(model.classes_):
        raise ModelLoadError(path, f"classes {list(model.classes_)} do not include 1 (up)")


@dataclass(frozen=True)
class TrainReport:
    """What :func:`train_model` did."""

    path: Path
    estimator: str
    feature_columns: tuple[str, ...]
    horizon: int
    n_samples: int
    positive_rate: float
    train_accuracy: float
    model: Any = field(repr=False, compare=False, default=None)


def _build_estimator(kind: Estimator, random_state: int) -> Any:
    try:
        from sklearn.ensemble import GradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        raise MissingExtraError(
            f"scikit-learn is not installed ({exc}); install the ml extra: "
            "pip install 'algostream[ml]'"
        ) from None
    if kind == "logistic":
        return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    if kind == "gradient_boosting":
        return GradientBoostingClassifier(random_state=random_state)
    raise ModelTrainError(f"estimator must be 'logistic' or 'gradient_boosting', got {kind!r}")


def training_set(
    features_df: pd.DataFrame,
    horizon: int,
    feature_columns: Sequence[str] = DEFAULT_MODEL_FEATURES,
    close: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """``(X, y)``: rows with every feature defined; ``y = 1`` if the forward return > 0."""
    if not isinstance(horizon, int) or horizon < 1:
        raise ModelTrainError(f"horizon must be an int >= 1, got {horizon!r}")
    if close is None:
        if "close" not in features_df.columns:
            raise ModelTrainError("features_df has no 'close' column; pass close=")
        close = features_df["close"]
    missing = [c for c in feature_columns if c not in features_df.columns]
    if missing:
        raise ModelTrainError(f"features_df is missing feature column(s) {missing}")
    forward = close.shift(-horizon) / close - 1.0
    X = features_df[list(feature_columns)].astype(float)
    keep = X.notna().all(axis=1) & forward.notna()
    return X[keep], (forward[keep] > 0).astype(int)


def train_model(
    features_df: pd.DataFrame,
    horizon: int,
    path: str | Path,
    *,
    feature_columns: Sequence[str] = DEFAULT_MODEL_FEATURES,
    close: pd.Series | None = None,
    estimator: Estimator = "logistic",
    random_state: int = 0,
    min_samples: int = 50,
) -> TrainReport:
    """Train a next-``horizon``-bar return-sign classifier and save it with skops.

    ``features_df`` is e.g. ``FeatureComputer().compute(prices)`` with a ``close`` column
    added (or pass ``close=``). Rows with an undefined feature or no forward price are
    dropped.
    """
    X, y = training_set(features_df, horizon, feature_columns, close)
    if len(X) < min_samples:
        raise ModelTrainError(f"only {len(X)} usable rows (< min_samples={min_samples})")
    if y.nunique() < 2:
        raise ModelTrainError(f"target has a single class {sorted(y.unique())}; need up and down")
    model = _build_estimator(estimator, random_state)
    model.fit(X, y)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _skops_io().dump(model, path)
    return TrainReport(
        path=path,
        estimator=estimator,
        feature_columns=tuple(feature_columns),
        horizon=horizon,
        n_samples=len(X),
        positive_rate=float(y.mean()),
        train_accuracy=float(model.score(X, y)),
        model=model,
    )


class ModelStrategyConfig(StrategyConfig):
    """Where the model is and how sure it must be."""

    model_path: str
    buy_threshold: float = Field(default=0.55, gt=0.5, le=1.0)
    trusted_types: tuple[str, ...] = DEFAULT_TRUSTED_TYPES


class ModelStrategy(Strategy[ModelStrategyConfig]):
    """Signals from a trained classifier's probability of an up move."""

    name: ClassVar[str] = "model"

    def __init__(self, config: ModelStrategyConfig, model: Any | None = None) -> None:
        super().__init__(config)
        self.model = (
            model if model is not None else load_model(config.model_path, config.trusted_types)
        )
        self.feature_columns: tuple[str, ...] = tuple(str(c) for c in self.model.feature_names_in_)
        self._up_index = list(self.model.classes_).index(1)
        self._last_side: Side | None = None

    def clone(self) -> ModelStrategy:
        """A fresh instance sharing the loaded model."""
        return ModelStrategy(self.config, self.model)

    def predict_up(self, fv: FeatureVector) -> float | None:
        """Probability of an up move, or ``None`` if a model feature is undefined."""
        row = [feature(fv, name) for name in self.feature_columns]
        if any(v is None for v in row):
            return None
        # columns are in feature_names_in_ order, so a plain array is safe and ~3x faster
        # than a one-row DataFrame; silence only sklearn's "no feature names" warning
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "X does not have valid feature names", UserWarning)
            proba = self.model.predict_proba(np.asarray([row], dtype=np.float64))
        return float(proba[0][self._up_index])

    def on_features(self, fv: FeatureVector) -> Signal | None:
        """Emit when the predicted side (BUY / SELL / no view) changes to BUY or SELL."""
        p_up = self.predict_up(fv)
        if p_up is None:
            return None
        threshold = self.config.buy_threshold
        side = Side.BUY if p_up >= threshold else Side.SELL if p_up <= 1 - threshold else None
        changed, self._last_side = side != self._last_side, side
        if side is None or not changed:
            return None
        reason = f"model p_up={p_up:.3f} (threshold {threshold:g})"
        return self.signal(
            fv, side, reason, strength=abs(2 * p_up - 1), confidence=max(p_up, 1 - p_up)
        )

    def to_state(self) -> dict[str, Any]:
        """The last predicted side."""
        return {"last_side": None if self._last_side is None else self._last_side.value}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore the last predicted side."""
        value = state.get("last_side") if isinstance(state, dict) else state
        if value not in (None, "BUY", "SELL"):
            raise StrategyStateError(f"strategy state key 'last_side' has a bad value {value!r}")
        self._last_side = None if value is None else Side(value)
