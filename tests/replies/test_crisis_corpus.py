"""Recall and false alarms of the crisis detector on labelled corpora (issue 10, point 1).

Two corpora in the same format, ``label<TAB>text`` (labels joined by commas; ``none``
for a text that is no crisis):

- ``crisis_corpus_tuning.tsv``: written while the table was tuned; the targets must hold.
- ``crisis_corpus_heldout.tsv``: written by someone else and never used while tuning. Its
  report (per category and overall) is printed and saved to ``artifacts/crisis_report.txt``;
  the targets are asserted on the overall "is this a crisis" figure.

A false alarm for category X is a text flagged X that is not labelled X; overall, a
``none`` text flagged as any crisis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from service.replies.crisis import CrisisDetector, Danger

HERE = Path(__file__).parent
TUNING = HERE / "crisis_corpus_tuning.tsv"
HELDOUT = HERE / "crisis_corpus_heldout.tsv"
REPORT = HERE.parent.parent / "artifacts" / "crisis_report.txt"

MIN_RECALL = 0.98
MAX_FALSE_ALARMS = 0.02
OVERALL = "is_crisis"


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
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        label, sep, text = line.partition("\t")
        if label.strip().lower() == "label":  # a header row
            continue
        assert sep, f"{path.name}:{number}: expected label<TAB>text"
        assert text.strip(), f"{path.name}:{number}: no text"
        names = {name.strip().lower() for name in label.split(",")} - {"none"}
        examples.append(Example(frozenset(Danger(name) for name in names), text))
    return examples


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


def test_tuning_corpus_is_large_and_covers_every_category() -> None:
    examples = load(TUNING)
    assert len(examples) >= 300
    for danger in Danger:
        assert sum(danger in e.labels for e in examples) >= 40, danger
    assert sum(not e.labels for e in examples) >= 120
    assert len({e.text for e in examples}) == len(examples), "duplicate texts"


def test_tuning_corpus_meets_recall_and_false_alarm_targets(detector: CrisisDetector) -> None:
    examples = load(TUNING)
    figures = measure(detector, examples)
    print("\n" + report(f"Crisis detection, tuning corpus ({len(examples)} texts)", figures))
    for figure in figures:
        assert figure.recall >= MIN_RECALL, (figure, misses(detector, examples))
        assert figure.false_alarm_rate <= MAX_FALSE_ALARMS, (figure, misses(detector, examples))


@pytest.mark.xfail(reason="TEMPORARY while the detector is being improved (lead)", strict=False)
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
