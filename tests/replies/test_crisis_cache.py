"""The trained crisis model on disk (service/replies/crisis_cache.py): loaded, it is the
model that was trained; a host's later processes load it instead of training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.replies import crisis_cache, crisis_model
from service.replies.crisis import builtin_model, features
from service.replies.crisis_model import Model

SAMPLE = [e.text for e in crisis_model.training_corpus()[::29]]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("STEADY_CACHE_DIR", str(folder))
    return folder


def test_a_saved_model_loads_as_the_same_model(tmp_path: Path) -> None:
    trained = builtin_model()
    path = tmp_path / "model.npz"
    crisis_cache.save(trained, path)
    loaded = crisis_cache.load(path)
    assert loaded.names == trained.names
    np.testing.assert_array_equal(loaded.weights, trained.weights)
    for text in SAMPLE:
        doc = features(text)
        np.testing.assert_array_equal(loaded.probabilities(doc), trained.probabilities(doc))
        assert loaded.flagged(doc) == trained.flagged(doc)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files), "no pickled objects"


def test_only_the_first_process_trains(cache: Path) -> None:
    trainings: list[Model] = []

    def train() -> Model:
        trainings.append(builtin_model())
        return trainings[-1]

    first = crisis_cache.cached_model(train)
    second = crisis_cache.cached_model(train)
    assert len(trainings) == 1, "the second one loaded the file"
    assert [p.name for p in cache.iterdir()] == [f"crisis-model-{crisis_cache.model_key()}.npz"]
    doc = features("i have the pills saved up and i think tonight is the night")
    np.testing.assert_array_equal(first.probabilities(doc), second.probabilities(doc))


def test_a_damaged_cache_is_trained_over(cache: Path) -> None:
    cache.mkdir()
    (cache / f"crisis-model-{crisis_cache.model_key()}.npz").write_bytes(b"not a model")
    trainings: list[Model] = []

    def train() -> Model:
        trainings.append(builtin_model())
        return trainings[-1]

    assert crisis_cache.cached_model(train) is trainings[0]
    assert crisis_cache.cached_model(train) is not trainings[0], "the damaged file was replaced"
    assert len(trainings) == 1


def test_an_unwritable_cache_only_means_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    monkeypatch.setenv("STEADY_CACHE_DIR", str(blocker / "cache"))
    model = builtin_model()
    assert crisis_cache.cached_model(lambda: model) is model


def test_the_key_changes_with_any_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    before = crisis_cache.model_key()
    monkeypatch.setattr(crisis_cache, "CORPORA", crisis_model.CORPORA[:-1])
    assert crisis_cache.model_key() != before
