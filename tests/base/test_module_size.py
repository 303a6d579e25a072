"""No module over 400 lines (issue 9; ARCHITECTURE.md "Split a module before ~400 lines")."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED_FOLDERS = ("service", "workers", "tests")
MAX_MODULE_LINES = 400


def line_count(path: Path) -> int:
    """Lines as `wc -l` counts them (a last line without a newline counts too)."""
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_in_service_workers_or_tests_is_over_400_lines() -> None:
    modules = [path for folder in CHECKED_FOLDERS for path in (ROOT / folder).rglob("*.py")]
    # A wrong ROOT would find nothing and pass for nothing.
    assert {path.relative_to(ROOT).parts[0] for path in modules} == set(CHECKED_FOLDERS)
    too_long = sorted(
        f"{path.relative_to(ROOT)} ({lines} lines)"
        for path in modules
        if (lines := line_count(path)) > MAX_MODULE_LINES
    )
    assert not too_long, f"over {MAX_MODULE_LINES} lines, split them: " + ", ".join(too_long)
