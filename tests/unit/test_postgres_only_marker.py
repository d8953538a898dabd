"""The ``postgres_only`` marker selects a test's PostgreSQL half and leaves out its SQLite half."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKED = (
    "tests/integration/test_monitor.py::test_a_claim_skips_the_images_another_replica_holds",
    "tests/integration/test_rollouts.py::test_two_rollout_workers_never_advance_the_same_batch_twice",
)


def _collected(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


UNMARKED = (
    "tests/integration/test_monitor.py::"
    "test_first_scan_requests_only_the_most_recent_tag_and_records_the_rest"
)


def test_postgres_only_tests_are_collected_on_postgresql_alone_and_others_on_both() -> None:
    # One collection for both halves of the claim: collecting imports the whole suite.
    collected = _collected(*MARKED, UNMARKED)
    assert sorted(collected) == sorted(
        [f"{test}[postgresql]" for test in MARKED]
        + [f"{UNMARKED}[postgresql]", f"{UNMARKED}[sqlite]"]
    )
