"""Recall and false alarms of the crisis detector on labelled corpora (issue 10, point 1).

Corpora in the same format, ``label<TAB>text`` (labels joined by commas; ``none``
for a text that is no crisis):

- ``service/replies/crisis_data/tuning.tsv`` to ``tuning21.tsv`` (the second onwards in
  many writers' voices; tuning5 was session 3's held-out corpus, tuning6, 7, 10-14 and 16-20
  were measured once before anything learnt from them; tuning8, 15 and 21 hold the tuners' own
  variants of each class of miss and hard negatives): the table was tuned on them and the
  model is trained on them, so their in-sample figures are high by construction; the
  cross-validated figures (model trained on four fifths, tested on the rest) say more.
  Before-figures (the detector before the round): round 2, tuning10-14 78.0 % recall, 8.0 %
  false alarms; round 3, tuning16-20 59.7 % and 6.5 % (per corpus in crisis.py).
- ``crisis_corpus_heldout.tsv``: 2,516 texts by six other writers (four from session 4,
  two drawn at random from session 5's seven), never used while tuning (its header says
  how it was kept apart; the test skips if it is absent). Its report (per category and
  overall) is printed and saved to ``artifacts/crisis_report.txt``; the targets are
  asserted on the overall "is this a crisis" figure.

A false alarm for category X is a text flagged X that is not labelled X; overall, a
``none`` text flagged as any crisis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.sparse.csgraph import connected_components
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedGroupKFold

from service.replies import crisis_model
from service.replies.crisis import CrisisDetector, Danger, features

HERE = Path(__file__).parent
TUNING = [crisis_model.CORPUS_DIR / name for name in crisis_model.CORPORA]
HELDOUT = HERE / "crisis_corpus_heldout.tsv"
REPORT = HERE.parent.parent / "artifacts" / "crisis_report.txt"

MIN_RECALL = 0.98
MAX_FALSE_ALARMS = 0.02
OVERALL = "is_crisis"
# In-sample floors per corpus: (overall recall, recall of each category, false alarms).
# The first corpus is the table's own. The second was written to break the table; a few of
# its one-off wordings ("i want out. of life") are left to the model rather than copied into
# the table as rows that would fit nothing else. In round 2 the new writers' hard negatives
# raised the model's threshold from 0.97 to 0.98, so texts it scored 0.97 in-sample no longer
# count (tuning4, 6, 7 fell 1-2 points). Round 2's own corpora (tuning10-14) are far below
# target even in-sample: the table was given rows for their general classes of miss, not a
# row per text, and the model (regularised, threshold 0.98) does not memorise them. These
# floors are what the detector measured, so that a change that loses ground fails here. Round
# 3 raised them to what it measured (AGREEMENT moved from 0.4 to 0.7; no floor fell); its own
# writers' corpora (tuning16-20) stay far below target in-sample, tuning19 (Spanish, French) most.
IN_SAMPLE_FLOORS = {
    "tuning.tsv": (0.99, 0.99, 0.01),
    "tuning2.tsv": (0.99, 0.95, 0.01),
    "tuning3.tsv": (MIN_RECALL, 0.95, 0.01),
    "tuning4.tsv": (0.96, 0.84, 0.01),
    "tuning5.tsv": (0.99, 0.91, MAX_FALSE_ALARMS),
    "tuning6.tsv": (MIN_RECALL, 0.96, 0.01),
    "tuning7.tsv": (0.97, 0.93, MAX_FALSE_ALARMS),
    "tuning8.tsv": (0.99, 0.98, 0.01),
    "tuning10.tsv": (0.95, 0.85, MAX_FALSE_ALARMS),
    "tuning11.tsv": (0.89, 0.8, MAX_FALSE_ALARMS),
    "tuning12.tsv": (0.9, 0.81, MAX_FALSE_ALARMS),
    "tuning13.tsv": (0.96, 0.89, MAX_FALSE_ALARMS),
    "tuning14.tsv": (0.9, 0.8, 0.03),
    "tuning15.tsv": (MIN_RECALL, 0.96, MAX_FALSE_ALARMS),
    "tuning16.tsv": (0.82, 0.71, MAX_FALSE_ALARMS),
    "tuning17.tsv": (0.93, 0.84, 0.03),
    "tuning18.tsv": (0.95, 0.84, 0.03),
    "tuning19.tsv": (0.76, 0.58, 0.03),
    "tuning20.tsv": (0.91, 0.81, 0.03),
    "tuning21.tsv": (1.0, 1.0, 0.03),
}
IDS = [str(number) for number in range(1, len(TUNING) + 1)]


@dataclass(frozen=True)
class Example:
    labels: frozenset[Danger]
    text: str


@dataclass(frozen=True)
class Figure:
    name: str
    positives: int
    found: int
    negatives: int
    false_alarms: int

    @property
    def recall(self) -> float:
        return self.found / self.positives if self.positives else 1.0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.negatives if self.negatives else 0.0


def load(path: Path) -> list[Example]:
    return [
        Example(frozenset(Danger(name) for name in e.labels), e.text)
        for e in crisis_model.read_corpus(path)
    ]


def measure(detector: CrisisDetector, examples: list[Example]) -> list[Figure]:
    found = [detector.assess(example.text).dangers for example in examples]
    figures = []
    for danger in Danger:
        labelled = [danger in e.labels for e in examples]
        flagged = [danger in f for f in found]
        figures.append(_figure(danger.value, labelled, flagged))
    labelled = [bool(e.labels) for e in examples]
    figures.append(_figure(OVERALL, labelled, [bool(f) for f in found]))
    return figures


def _figure(name: str, labelled: list[bool], flagged: list[bool]) -> Figure:
    pairs = list(zip(labelled, flagged, strict=True))
    return Figure(
        name,
        positives=sum(1 for is_x, _ in pairs if is_x),
        found=sum(1 for is_x, got in pairs if is_x and got),
        negatives=sum(1 for is_x, _ in pairs if not is_x),
        false_alarms=sum(1 for is_x, got in pairs if not is_x and got),
    )


def report(title: str, figures: list[Figure]) -> str:
    lines = [
        title,
        f"{'category':<14}{'recall':>22}{'false alarms':>22}",
    ]
    for f in figures:
        recall = f"{f.found}/{f.positives} = {f.recall:6.1%}"
        alarms = f"{f.false_alarms}/{f.negatives} = {f.false_alarm_rate:6.1%}"
        lines.append(f"{f.name:<14}{recall:>22}{alarms:>22}")
    lines.append(f"targets: recall >= {MIN_RECALL:.0%}, false alarms <= {MAX_FALSE_ALARMS:.0%}")
    return "\n".join(lines)


def misses(detector: CrisisDetector, examples: list[Example]) -> list[str]:
    """Labels of the texts that went wrong (never the texts: a failure message stays short)."""
    wrong = []
    for number, example in enumerate(examples):
        got = detector.assess(example.text).dangers
        if got != example.labels:
            wrong.append(f"#{number}: labelled {sorted(example.labels)} got {sorted(got)}")
    return wrong


@pytest.fixture(scope="module")
def detector() -> CrisisDetector:
    return CrisisDetector()


@pytest.mark.parametrize(
    ("path", "texts", "per_category", "negatives"),
    [
        (TUNING[0], 900, 100, 400),
        (TUNING[1], 750, 80, 300),
        (TUNING[2], 450, 55, 150),
        (TUNING[3], 240, 25, 90),
        (TUNING[4], 210, 30, 60),
        (TUNING[5], 410, 55, 110),
        (TUNING[6], 400, 55, 110),
        (TUNING[7], 250, 30, 70),
        (TUNING[8], 400, 55, 110),
        (TUNING[9], 400, 55, 110),
        (TUNING[10], 400, 55, 110),
        (TUNING[11], 380, 50, 100),
        (TUNING[12], 400, 55, 110),
        (TUNING[13], 110, 10, 35),
        (TUNING[14], 400, 45, 130),
        (TUNING[15], 400, 45, 140),
        (TUNING[16], 400, 50, 135),
        (TUNING[17], 400, 45, 140),
        (TUNING[18], 400, 35, 195),
        (TUNING[19], 110, 12, 40),
    ],
    ids=IDS,
)
def test_tuning_corpus_is_large_and_covers_every_category(
    path: Path, texts: int, per_category: int, negatives: int
) -> None:
    examples = load(path)
    assert len(examples) >= texts
    for danger in Danger:
        assert sum(danger in e.labels for e in examples) >= per_category, danger
    assert sum(not e.labels for e in examples) >= negatives
    assert len({e.text for e in examples}) == len(examples), "duplicate texts"


def test_the_tuning_corpora_share_no_text() -> None:
    seen: set[str] = set()
    for path in TUNING:
        texts = {e.text.lower() for e in load(path)}
        assert not texts & seen, path.name
        seen |= texts


@pytest.mark.parametrize("path", TUNING, ids=IDS)
def test_tuning_corpus_meets_recall_and_false_alarm_targets(
    detector: CrisisDetector, path: Path
) -> None:
    examples = load(path)
    figures = measure(detector, examples)
    print(
        "\n" + report(f"Crisis detection, {path.name} in-sample ({len(examples)} texts)", figures)
    )
    overall, each, alarms = IN_SAMPLE_FLOORS[path.name]
    for figure in figures:
        least = overall if figure.name == OVERALL else each
        assert figure.recall >= least, (figure, misses(detector, examples))
        assert figure.false_alarm_rate <= alarms, (figure, misses(detector, examples))


@pytest.mark.xfail(
    reason=(
        "every new writer's corpus so far, measured before anything learnt from it, was below "
        "target: 87.8 % recall and 5.4 % false alarms (tuning5), 65.1 % and 13.0 % (tuning6), "
        "67.2 % and 6.1 % (tuning7), 78.0 % and 8.0 % (tuning10-14), 59.7 % and 6.5 % "
        "(tuning16-20); and this held-out corpus, measured only by the lead: its first 1,642 "
        "texts 78.4 % recall, 4.9 % false alarms after round 2 (70.8 % and 7.2 % before), "
        "81.0 % and 4.9 % after round 3; all 2,516 texts 68.1 % and 5.1 % before round 3, "
        "72.5 % and 4.6 % after (Spanish and French: 20.1 % then 32.6 %), 72.9 % and 4.8 % "
        "with the lead's own Spanish and French rows; targets 98 % and 2 %"
    ),
    strict=False,
)
def test_heldout_corpus_report_meets_targets_overall(detector: CrisisDetector) -> None:
    if not HELDOUT.exists():
        pytest.skip(f"{HELDOUT.name} is not in this checkout")
    examples = load(HELDOUT)
    figures = measure(detector, examples)
    table = report(f"Crisis detection, held-out corpus ({len(examples)} texts)", figures)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    overall = next(f for f in figures if f.name == OVERALL)
    assert overall.recall >= MIN_RECALL, table
    assert overall.false_alarm_rate <= MAX_FALSE_ALARMS, table


# --- cross-validation: how the detector generalises ----------------------------------------

FOLDS = 5
NEAR_DUPLICATE = 0.7  # cosine of character 3-5-gram TF-IDF: variants of one message
THRESHOLDS = np.round(np.arange(0.50, 1.00, 0.01), 2)
# Honest floors of the cross-validated figures (see test_cross_validated_report): the table
# is in-sample here, so these say more about the model's false alarms than about recall.
CV_MIN_RECALL = 0.95  # round 2: 95.5 % over its fourteen corpora; round 3: 95.7 % over those
ROUND_2_CORPORA = crisis_model.CORPORA[:14]
CV_MIN_RECALL_ALL = 0.92  # round 3, all twenty corpora: 92.8 %, then 93.2 % (AGREEMENT 0.5)
CV_MAX_FALSE_ALARMS = 0.02


@dataclass(frozen=True)
class CrossValidation:
    examples: list[Example]
    table: list[frozenset[Danger]]  # what the table's strong rows find in each text
    weak: list[frozenset[Danger]]  # what only its weak rows find
    probabilities: npt.NDArray[np.float64]  # the model's, trained without the text's fold
    names: tuple[str, ...]

    enough: list[bool]  # whether the model judges the text at all (MIN_WORDS)
    corpora: list[str]  # the file each text comes from

    def model_found(self, threshold: float) -> list[frozenset[str]]:
        return [
            crisis_model.flagged_by(self.names, row, threshold) if enough else frozenset()
            for row, enough in zip(self.probabilities, self.enough, strict=True)
        ]

    def found(
        self, threshold: float, agreement: float = crisis_model.AGREEMENT
    ) -> list[frozenset[Danger]]:
        """What the detector finds, as ``CrisisDetector.assess`` combines the two readers."""
        return [
            table
            | (weak if not enough or row[-1] >= agreement else frozenset())
            | {Danger(n) for n in model}
            for table, weak, row, enough, model in zip(
                self.table,
                self.weak,
                self.probabilities,
                self.enough,
                self.model_found(threshold),
                strict=True,
            )
        ]


def near_duplicate_groups(texts: list[str]) -> npt.NDArray[np.int32]:
    """Texts that are variants of one another share a group, so they share a fold."""
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform(texts)
    similar = (vectors @ vectors.T) >= NEAR_DUPLICATE
    _, groups = connected_components(similar, directed=False)
    return np.asarray(groups, dtype=np.int32)


@pytest.fixture(scope="module")
def cross_validation(detector: CrisisDetector) -> CrossValidation:
    examples = [e for path in TUNING for e in load(path)]
    docs = [features(e.text) for e in examples]
    labels = [frozenset(d.value for d in e.labels) for e in examples]
    # Stratified by label set; a set too rare to reach every fold counts as its first label.
    combos = [",".join(sorted(labels_)) or "none" for labels_ in labels]
    strata = [c if combos.count(c) >= FOLDS else c.split(",")[0] for c in combos]
    groups = near_duplicate_groups([d.surface for d in docs])
    folds = StratifiedGroupKFold(n_splits=FOLDS, shuffle=True, random_state=0)
    categories = [d.value for d in Danger]
    probabilities = np.zeros((len(examples), len(categories) + 1))
    names: tuple[str, ...] = ()
    for train, test in folds.split(docs, strata, groups):
        model = crisis_model.Model.train(
            [docs[i] for i in train], [labels[i] for i in train], categories
        )
        names = model.names
        for i in test:
            probabilities[i] = model.probabilities(docs[i])
    findings = [detector.table_findings(e.text) for e in examples]
    enough = [crisis_model.enough_words(doc) for doc in docs]
    corpora = [path.name for path in TUNING for _ in load(path)]
    strong, weak = [s for s, _ in findings], [w for _, w in findings]
    return CrossValidation(examples, strong, weak, probabilities, names, enough, corpora)


def overall_rates(
    cv: CrossValidation, threshold: float, agreement: float = crisis_model.AGREEMENT
) -> tuple[float, float]:
    """Cross-validated (recall, false alarms) of "is this a crisis"."""
    found = cv.found(threshold, agreement)
    pairs = list(zip(cv.examples, found, strict=True))
    positives = [bool(f) for e, f in pairs if e.labels]
    negatives = [bool(f) for e, f in pairs if not e.labels]
    return sum(positives) / len(positives), sum(negatives) / len(negatives)


AGREEMENTS = np.round(np.arange(0.1, 1.0, 0.1), 1)
RECALL_TOLERANCE = 0.003  # a text or two more or less in the corpora moves the best pair


def test_the_threshold_and_agreement_are_chosen_by_cross_validation(
    cross_validation: CrossValidation,
) -> None:
    """THRESHOLD and AGREEMENT are re-derived together (crisis.py's docstring: the rule).

    For each agreement level, the lowest threshold at which cross-validated false alarms
    stay within 2 %; of those pairs, the one with the highest cross-validated recall. The
    configured pair keeps within the budget and its recall is within a few texts of the best.
    """
    best: tuple[float, float, float] | None = None
    for agreement in AGREEMENTS:
        within = [
            t
            for t in THRESHOLDS
            if overall_rates(cross_validation, t, agreement)[1] <= MAX_FALSE_ALARMS
        ]
        if within:
            recall = overall_rates(cross_validation, min(within), agreement)[0]
            if best is None or recall > best[0]:
                best = (recall, min(within), agreement)
    assert best is not None, "no threshold keeps cross-validated false alarms within 2 %"
    recall, alarms = overall_rates(cross_validation, crisis_model.THRESHOLD, crisis_model.AGREEMENT)
    hint = f"the corpora now give THRESHOLD {best[1]:.2f}, AGREEMENT {best[2]:.1f}"
    assert alarms <= MAX_FALSE_ALARMS, hint
    assert recall + RECALL_TOLERANCE >= best[0], hint


def test_cross_validated_report(cross_validation: CrossValidation) -> None:
    examples, found = cross_validation.examples, cross_validation.found(crisis_model.THRESHOLD)
    figures = [
        _figure(d.value, [d in e.labels for e in examples], [d in f for f in found]) for d in Danger
    ]
    overall = _figure(OVERALL, [bool(e.labels) for e in examples], [bool(f) for f in found])
    title = (
        f"Crisis detection, {FOLDS}-fold cross-validation over the tuning corpora "
        f"({len(examples)} texts; model out-of-fold, table in-sample)"
    )
    print("\n" + report(title, [*figures, overall]))
    model_only = [bool(m) for m in cross_validation.model_found(crisis_model.THRESHOLD)]
    alone = _figure("model alone", [bool(e.labels) for e in examples], model_only)
    print(report("The model alone, out-of-fold", [alone]).split("\n", 1)[1])
    assert overall.recall >= CV_MIN_RECALL_ALL
    assert overall.false_alarm_rate <= CV_MAX_FALSE_ALARMS
    pairs = zip(examples, found, cross_validation.corpora, strict=True)
    earlier = [bool(f) for e, f, name in pairs if e.labels and name in ROUND_2_CORPORA]
    assert sum(earlier) / len(earlier) >= CV_MIN_RECALL  # the fourteen corpora it was set on
