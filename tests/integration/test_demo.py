"""`tagwarden demo --exit-when-done`: discovery → approval → rollout, offline, in seconds."""

from __future__ import annotations

import re
import time

from typer.testing import CliRunner

from tagwarden.cli.main import app


def test_demo_shows_discovery_approval_and_a_completed_canary_rollout() -> None:
    started = time.monotonic()
    result = CliRunner().invoke(app, ["demo", "--exit-when-done"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "admin token: tw_" in out
    # Discovery: the monitor's seed lines, and a request per image.
    assert "[ImageMonitor] Monitoring 4 images" in out
    assert "[ImageMonitor] ✅ Created approval request for redis:" in out
    assert "monitor: 4 images checked, 4 approval requests created" in out
    # Approval: the seed's process lines.
    assert "Processing approved tag: redis:" in out
    assert "   ✅ Added architecture variant: arm64" in out
    assert re.search(r"✅ Successfully processed approval request \d+\n", out)
    # Rollout: canary first, then the batches, to all 20 simulated devices.
    assert "registered 20 simulated devices" in out
    assert "running    batch 1/3  pending 18" in out
    assert "completed  batch 3/3  succeeded 20" in out
    assert "20 of 20 devices run redis:" in out
    assert elapsed < 45
