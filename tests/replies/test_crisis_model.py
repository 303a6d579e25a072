"""The crisis detector's statistical model: features, training, scoring, the lazy build."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import hstack

from service.replies import crisis, crisis_model
from service.replies.crisis import CrisisDetector, Danger, builtin_model, features, train_model
from service.replies.crisis_model import ANY, Model, flagged_by, mark_negation, read_corpus

CATEGORIES = tuple(d.value for d in Danger)
SAMPLE = [e.text for e in crisis_model.training_corpus()[::37]]


@pytest.fixture(scope="module")
def model() -> Model:
    return builtin_model()


def test_direct_scoring_matches_sklearns_transform(model: Model) -> None:
    """The per-text scoring shortcut gives sklearn's TF-IDF values (the reference)."""
    docs = [features(text) for text in [*SAMPLE, "", "zzzz qqqq"]]
    reference = hstack(
        [
            model.chars.vectorizer.transform([d.surface for d in docs]),
            model.words.vectorizer.transform([d.canonical for d in docs]),
        ]
    ).toarray()
    for doc, row in zip(docs, reference, strict=True):
        dense = np.zeros(model.weights.shape[0])
        for block, text in ((model.chars, doc.surface), (model.words, doc.canonical)):
            columns, values = block.encode(text)
            dense[columns] = values
        np.testing.assert_allclose(dense, row, atol=1e-12)
        expected = 1 / (1 + np.exp(-(row @ model.weights + model.bias)))
        np.testing.assert_allclose(model.probabilities(doc), expected, atol=1e-12)


def test_training_is_deterministic(model: Model) -> None:
    again = train_model((e.labels, e.text) for e in crisis_model.training_corpus())
    np.testing.assert_array_equal(again.weights, model.weights)
    np.testing.assert_array_equal(again.bias, model.bias)


def test_the_model_is_trained_once_per_process_even_under_concurrent_first_use() -> None:
    crisis._trained_model.cache_clear()
    got: list[Model] = []
    threads = [threading.Thread(target=lambda: got.append(builtin_model())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 4
    assert all(m is got[0] for m in got)
    assert crisis._trained_model.cache_info().misses == 1


def test_the_model_catches_wording_the_table_lacks() -> None:
    detector = CrisisDetector()
    text = "honestly i think everyone would cope fine if i was gone for good"
    assert detector.table_dangers(text) == frozenset()
    assert Danger.SUICIDE in detector.assess(text).dangers


@pytest.mark.parametrize(
    "text",
    [
        "this traffic is killing me",
        "he never hit me, he just yells",
        "I'm not suicidal, just sad about the house",
        "coach made the kids run suicides at practice",
        "he called me about the kids",
        "I could murder a burger",
    ],
)
def test_the_model_does_not_flag_figurative_or_negated_words(text: str) -> None:
    assert CrisisDetector().model_dangers(text) == frozenset()


def test_the_model_leaves_texts_of_one_or_two_words_to_the_table() -> None:
    detector = CrisisDetector()
    for text in ["ME", "me too", "WHY", "I"]:
        assert detector.model_dangers(text) == frozenset()
    assert detector.assess("kms").dangers == {Danger.SUICIDE}  # the table still reads them


def test_the_model_reads_guarded_words_as_hidden_and_negations_as_such() -> None:
    assert features("I killed it at work today").canonical == "i ~ ~ at work today"
    assert features("he never hit me").canonical == "he ~ ~ ~"  # a negation guard
    assert "not_want" in features("i never wanted any of this").canonical.split()


def test_negation_reaches_to_the_end_of_its_clause() -> None:
    tokens = ["i", "be", "not", "suicidal", "but", "i", "want", "to", "die", ".", "never", "again"]
    marked = ["i", "be", "not", "not_suicidal", "but", "i", "want", "to", "die", ".", "never"]
    assert mark_negation(tokens) == [*marked, "not_again"]


def test_any_crisis_alone_flags_the_most_likely_category() -> None:
    names = (*CATEGORIES, ANY)
    row = np.array([0.2, 0.1, 0.7, 0.0, 0.0, 0.97])
    assert flagged_by(names, row, 0.96) == {"hopelessness"}
    assert flagged_by(names, row, 0.98) == frozenset()
    both = np.array([0.97, 0.1, 0.99, 0.0, 0.0, 0.99])
    assert flagged_by(names, both, 0.96) == {"suicide", "hopelessness"}


def test_a_corpus_line_without_a_tab_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corpus.tsv"
    path.write_text("# a comment\nlabel\ttext\nsuicide\ti want to die\nnone no tab here\n")
    with pytest.raises(ValueError, match=r"corpus\.tsv:4"):
        read_corpus(path)


def test_the_training_corpora_ship_beside_the_module() -> None:
    for name in crisis_model.CORPORA:
        assert (crisis_model.CORPUS_DIR / name).is_file()
    assert len(crisis_model.training_corpus()) >= 1500
