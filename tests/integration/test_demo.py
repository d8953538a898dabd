"""`tagwarden demo --exit-when-done`: discovery → approval → rollout, offline, in seconds."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from tagwarden.approvals import approving
from tagwarden.approvals.approving import AfterApproval
from tagwarden.catalogue.models import Image
from tagwarden.cli import demo
from tagwarden.cli.main import app
from tagwarden.config import Settings
from tests.factories import seed_request


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


async def test_the_demos_approval_follows_the_auto_process_setting(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No path ignores TAGWARDEN_AUTO_PROCESS_APPROVED, the demo's neither.
    With it off, the approval activates nothing; the demo then takes the explicit step."""
    async with sessionmaker() as session, session.begin():
        image = Image(image_name="redis", approval_status="approved")
        session.add(image)
        await session.flush()
        image_id = image.id
    request_id = await seed_request(sessionmaker, image_id)
    decided: list[bool] = []
    decide = approving.decide

    async def spy(*args: Any, then: AfterApproval, **kwargs: Any) -> approving.DecisionResult:
        decided.append(then.activate)
        result = await decide(*args, then=then, **kwargs)
        assert result.activation is None  # approved, not activated, by the decision itself
        return result

    monkeypatch.setattr(approving, "decide", spy)
    await demo.approve(settings.model_copy(update={"auto_process_approved": False}), request_id)

    assert decided == [False]
    out = capsys.readouterr().out
    assert "auto-processing is off (TAGWARDEN_AUTO_PROCESS_APPROVED=false)" in out
    assert f"✅ Successfully processed approval request {request_id}" in out
