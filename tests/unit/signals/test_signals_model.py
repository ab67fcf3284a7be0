"""Model strategy: train/save/load round trip with skops; untrusted or broken files refused."""

from __future__ import annotations

import itertools
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from signal_helpers import fv

sklearn = pytest.importorskip("sklearn")
sio = pytest.importorskip("skops.io")

from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402

from algostream.config import SignalConfig  # noqa: E402
from algostream.features import FeatureComputer  # noqa: E402
from algostream.model.enums import Side  # noqa: E402
from algostream.signals import (  # noqa: E402
    DEFAULT_MODEL_FEATURES,
    ModelLoadError,
    ModelStrategy,
    ModelStrategyConfig,
    ModelTrainError,
    SignalProcessor,
    TrainReport,
    build_strategy,
    load_model,
    train_model,
)


def _training_frame(n: int = 1200, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    prices = pd.DataFrame(
        {
            "high": close * 1.002,
            "low": close * 0.998,
            "close": close,
            "volume": rng.uniform(1, 5, n),
        }
    )
    return FeatureComputer().compute(prices).assign(close=close)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainReport]:
    frame = _training_frame()
    root = tmp_path_factory.mktemp("models")
    reports = {}
    for kind in ("logistic", "gradient_boosting"):
        report = train_model(frame, 5, root / f"{kind}.skops", estimator=kind)  # type: ignore[arg-type]
        assert report.n_samples > 1000 and report.feature_columns == DEFAULT_MODEL_FEATURES
        assert 0.0 < report.positive_rate < 1.0 and 0.0 <= report.train_accuracy <= 1.0
        reports[kind] = report
    return reports


@pytest.mark.parametrize("kind", ["logistic", "gradient_boosting"])
def test_saved_model_loads_and_predicts_identically(
    trained: dict[str, TrainReport], kind: str
) -> None:
    frame = _training_frame(300, seed=9)
    X = frame[list(DEFAULT_MODEL_FEATURES)].dropna()
    report = trained[kind]
    loaded = load_model(report.path)
    assert type(loaded) is type(report.model)
    assert list(loaded.feature_names_in_) == list(DEFAULT_MODEL_FEATURES)
    np.testing.assert_array_equal(loaded.predict_proba(X), report.model.predict_proba(X))
    assert np.ptp(loaded.predict_proba(X)[:, 1]) > 0.01  # not a constant predictor


def test_model_strategy_emits_when_the_predicted_side_changes(
    trained: dict[str, TrainReport],
) -> None:
    strategy = ModelStrategy(
        ModelStrategyConfig(model_path=str(trained["logistic"].path), buy_threshold=0.5000001)
    )
    frame = _training_frame(400, seed=4).dropna()
    sides, changes = [], 0
    previous = None
    for i, row in enumerate(frame[list(DEFAULT_MODEL_FEATURES)].itertuples(index=False)):
        vector = fv(i, **dict(zip(DEFAULT_MODEL_FEATURES, map(float, row), strict=True)))
        p_up = strategy.predict_up(vector)
        assert p_up is not None
        side = Side.BUY if p_up >= 0.5000001 else Side.SELL if p_up <= 1 - 0.5000001 else None
        if side is not None and side != previous:
            changes += 1
        previous = side
        signal = strategy.on_features(vector)
        if signal is not None:
            sides.append(signal.side)
            assert signal.confidence == pytest.approx(max(p_up, 1 - p_up))
            assert signal.strength == pytest.approx(abs(2 * p_up - 1))
    assert len(sides) == changes >= 2
    assert all(a != b for a, b in itertools.pairwise(sides))  # alternates


def test_model_strategy_waits_for_every_feature(trained: dict[str, TrainReport]) -> None:
    strategy = ModelStrategy(ModelStrategyConfig(model_path=str(trained["logistic"].path)))
    values: dict[str, float | None] = dict.fromkeys(DEFAULT_MODEL_FEATURES, 0.1)
    values["rsi"] = None
    assert strategy.on_features(fv(0, **values)) is None


def test_build_strategy_model_and_clones_share_the_loaded_model(
    trained: dict[str, TrainReport],
) -> None:
    config = SignalConfig(strategy="model", model_path=str(trained["gradient_boosting"].path))
    processor = SignalProcessor(config)
    a, b = processor.strategy("SIM:A"), processor.strategy("SIM:B")
    assert isinstance(a, ModelStrategy) and isinstance(b, ModelStrategy)
    assert a is not b and a.model is b.model
    assert build_strategy("model", config).name == "model"


def test_untrusted_type_is_refused_with_path_and_type(tmp_path: Path) -> None:
    # never fitted or called: skops stores the reference to os.system as a type to import
    evil = Pipeline([("f", FunctionTransformer(func=os.system)), ("s", StandardScaler())])
    path = tmp_path / "evil.skops"
    sio.dump(evil, path)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert info.value.untrusted_types == ("posix.system",)
    assert "posix.system" in str(info.value)


def test_tampered_schema_is_refused(trained: dict[str, TrainReport], tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.skops"
    with zipfile.ZipFile(trained["logistic"].path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "schema.json":
                schema = json.loads(data)
                schema["__module__"], schema["__class__"] = "subprocess", "Popen"
                data = json.dumps(schema).encode()
            dst.writestr(item, data)
    with pytest.raises(ModelLoadError, match=r"untrusted type\(s\) \['subprocess.Popen'\]"):
        load_model(tampered)


def test_corrupt_and_missing_files_are_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.skops"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a model")
    with pytest.raises(ModelLoadError, match="not a readable skops file"):
        load_model(corrupt)
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model(tmp_path / "absent.skops")


def test_a_non_classifier_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scaler.skops"
    sio.dump(StandardScaler().fit(np.ones((3, 2))), path)
    with pytest.raises(ModelLoadError, match="not a fitted classifier"):
        load_model(path)


def test_training_errors_name_the_problem(tmp_path: Path) -> None:
    frame = _training_frame(200)
    with pytest.raises(ModelTrainError, match="horizon"):
        train_model(frame, 0, tmp_path / "m.skops")
    with pytest.raises(ModelTrainError, match=r"missing feature column\(s\) \['nope'\]"):
        train_model(frame, 1, tmp_path / "m.skops", feature_columns=["nope"])
    with pytest.raises(ModelTrainError, match="no 'close' column"):
        train_model(frame.drop(columns=["close"]), 1, tmp_path / "m.skops")
    flat = frame.assign(close=np.linspace(100, 200, len(frame)))  # always up: one class
    with pytest.raises(ModelTrainError, match="single class"):
        train_model(flat, 1, tmp_path / "m.skops")
    assert not (tmp_path / "m.skops").exists()


def test_predict_up_is_the_models_up_probability(trained: dict[str, TrainReport]) -> None:
    report = trained["gradient_boosting"]
    strategy = ModelStrategy(ModelStrategyConfig(model_path=str(report.path)))
    X = _training_frame(120, seed=6)[list(DEFAULT_MODEL_FEATURES)].dropna()
    expected = report.model.predict_proba(X)[:, list(report.model.classes_).index(1)]
    got = [
        strategy.predict_up(fv(i, **dict(zip(X.columns, map(float, row), strict=True))))
        for i, row in enumerate(X.itertuples(index=False))
    ]
    np.testing.assert_array_equal(got, expected)
