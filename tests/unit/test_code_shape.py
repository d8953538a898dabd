"""No function over 80 lines and no module over 450 lines in the server or the agent: a long
function doing several jobs hides its steps, and a long module is asking to be split."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (ROOT / "src", ROOT / "agent" / "src")
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 450

# Migrations are history: a revision is written once, reviewed by hand and never edited again,
# so its one long upgrade() stays as it was applied.
MIGRATIONS = "src/tagwarden/migrations/versions/"

# Exceptions, each with its reason; none today. The test below fails on a stale entry.
ALLOWED_LONG_FUNCTIONS: set[tuple[str, str]] = set()
ALLOWED_LONG_MODULES: set[str] = set()


def _modules() -> list[Path]:
    return sorted(p for source in SOURCES for p in source.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def long_functions(path: Path) -> list[tuple[str, int]]:
    """(name, length) of every function or method in ``path`` longer than the limit."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append((node.name, length))
    return found


def test_the_check_sees_the_sources() -> None:
    names = {_relative(p) for p in _modules()}
    assert "src/tagwarden/app.py" in names
    assert "agent/src/tagwarden_agent/agent.py" in names


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sample = tmp_path / "sample.py"
    sample.write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert long_functions(sample) == [("long", MAX_FUNCTION_LINES + 1)]


def test_no_function_is_over_80_lines() -> None:
    too_long = [
        f"{name} ({_relative(path)}, {length} lines)"
        for path in _modules()
        if not _relative(path).startswith(MIGRATIONS)
        for name, length in long_functions(path)
        if (_relative(path), name) not in ALLOWED_LONG_FUNCTIONS
    ]
    assert too_long == []


def test_no_module_is_over_450_lines() -> None:
    too_long = [
        f"{_relative(path)} ({length} lines)"
        for path in _modules()
        if (length := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
        and _relative(path) not in ALLOWED_LONG_MODULES
    ]
    assert too_long == []


def test_the_allow_lists_name_only_what_still_needs_them() -> None:
    """An entry that no longer applies is removed, so the lists only shrink."""
    by_name = {_relative(p): p for p in _modules()}
    stale_functions = [
        entry
        for entry in ALLOWED_LONG_FUNCTIONS
        if entry[0] not in by_name
        or entry[1] not in {name for name, _ in long_functions(by_name[entry[0]])}
    ]
    stale_modules = [
        path
        for path in ALLOWED_LONG_MODULES
        if path not in by_name
        or len(by_name[path].read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES
    ]
    assert stale_functions == []
    assert stale_modules == []
