"""The reply grammar's crisis words: found, not found in figures of speech, extended by a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.replies.crisis import CrisisDetector, read_extra_phrases

# --- crisis words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I want to kill myself",
        "having suicidal thoughts tonight",
        "I just want to die",
        "he hit me last night",
        "She hit me again",
        "he's been hitting me",
        "he threatened to kill me",
        "I'm afraid for my life",
        "I'm not safe here",
        "I feel like I'm in danger",
        "it was abuse",
        "he has a gun",
    ],
)
def test_crisis_words_are_found(text: str) -> None:
    assert CrisisDetector().found_in(text)


@pytest.mark.parametrize(
    "text",
    [
        "It finally hit me that it's over",
        "this week is killing me",
        "he hurt me so much",
        "he kicked me out of the house",
        "I texted him",
        "DONE gym",
        "stop",
    ],
)
def test_everyday_figures_of_speech_are_not_crisis_words(text: str) -> None:
    assert not CrisisDetector().found_in(text)


def test_crisis_words_file_adds_phrases_ignoring_blanks_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "crisis.txt"
    path.write_text("# operator additions\n\nRed Balloon  # code word\nwalking away\n")
    assert read_extra_phrases(path) == ("Red Balloon", "walking away")
    words = CrisisDetector.from_file(path)
    assert words.found_in("The RED balloon is up")
    assert not words.found_in("balloons, red ones")
    assert words.found_in("I want to die")  # the built-in list still applies


def test_unreadable_crisis_words_file_keeps_the_built_in_list(tmp_path: Path) -> None:
    words = CrisisDetector.from_file(tmp_path / "missing.txt")
    assert words.found_in("suicide")
