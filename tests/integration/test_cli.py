"""The `tagwarden` command against both databases: tokens, images, the seed's process output."""

from __future__ import annotations

import asyncio
import logging

import pytest
from typer.testing import CliRunner

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.catalogue.models import Image
from tagwarden.cli.main import app
from tagwarden.config import get_settings
from tagwarden.db import make_engine, make_sessionmaker
from tagwarden.testing.fake_registry import FakeRegistry
from tagwarden.testing.fake_server import running
from tests.factories import SEED_METADATA

runner = CliRunner()


def _seed_approved_request(url: str) -> None:
    async def go() -> None:
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as session, session.begin():
            image = Image(image_name="redis", approval_status="approved")
            session.add(image)
            await session.flush()
            session.add(
                ApprovalRequest(
                    id=123,
                    image_id=image.id,
                    image_name="redis",
                    tag_name="7.2.5-alpine",
                    status="pending",
                    metadata_=dict(SEED_METADATA),
                    digest=SEED_METADATA["digest"],
                )
            )
        await engine.dispose()

    asyncio.run(go())


def test_token_create_prints_the_token_alone_on_the_last_line(cli_env: str) -> None:
    result = runner.invoke(
        app, ["token", "create", "--name", "ops", "--role", "admin", "--identity", "a@example.com"]
    )
    assert result.exit_code == 0, result.output
    last = result.stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith("tw_")
    assert " " not in last
    assert len(last) > 40
    listed = runner.invoke(app, ["token", "list"])
    assert "a@example.com" in listed.stdout
    assert last not in listed.stdout
    bad = runner.invoke(
        app, ["token", "create", "--name", "x", "--role", "root", "--identity", "x@example.com"]
    )
    assert bad.exit_code == 1
    assert "role must be one of" in bad.output


def test_approve_and_process_print_the_seeds_lines(
    cli_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGWARDEN_AUTO_PROCESS_APPROVED", "false")
    get_settings.cache_clear()
    _seed_approved_request(cli_env)
    approved = runner.invoke(
        app,
        [
            "approvals",
            "approve",
            "123",
            "--notes",
            "Security patches included",
            "--as",
            "admin@example.com",
        ],
    )
    assert approved.exit_code == 0, approved.output
    assert "Approved approval request 123" in approved.stdout

    processed = runner.invoke(app, ["approvals", "process", "123"])
    assert processed.exit_code == 0, processed.output
    assert processed.stdout.splitlines() == [
        "Processing approved tag: redis:7.2.5-alpine",
        "✅ Added redis:7.2.5-alpine to image_tags",
        "   ✅ Added architecture variant: arm64",
        "✅ Successfully processed approval request 123",
    ]
    shown = runner.invoke(app, ["images", "show", "1"])
    assert shown.stdout.count("7.2.5-alpine") == 2

    again = runner.invoke(app, ["approvals", "process", "123"])
    assert "already processed" in again.stdout

    missing = runner.invoke(app, ["approvals", "process", "999"])
    assert missing.exit_code == 1
    assert "approval request 999 not found" in missing.output


def test_a_bad_setting_stops_the_command_with_a_clear_message(
    cli_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGWARDEN_CHECK_INTERVAL_MINUTES", "never")
    get_settings.cache_clear()
    result = runner.invoke(app, ["images", "list"])
    assert result.exit_code == 2
    assert "TAGWARDEN_CHECK_INTERVAL_MINUTES" in result.output


def test_monitor_run_once_and_images_check_against_a_served_fake_registry(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeRegistry()
    fake.add_repository("library/redis", 12)
    fake.add_repository("library/nginx", 4)
    with running(fake) as url:
        monkeypatch.setenv("TAGWARDEN_DOCKERHUB_API_URL", url)
        get_settings.cache_clear()
        for name in ("redis", "nginx"):
            added = runner.invoke(app, ["images", "add", name, "--watch"])
            assert added.exit_code == 0, added.output

        caplog.set_level(logging.INFO, logger="tagwarden.monitor")
        result = runner.invoke(app, ["monitor", "run-once"])
        assert result.exit_code == 0, result.output
        assert "2 images checked, 2 approval requests created, 0 errors" in result.stdout
        # The server's scan, seed log lines and all, not a copy of it.
        lines = [r.getMessage() for r in caplog.records]
        assert lines[:2] == [
            "[ImageMonitor] Checking for new image tags...",
            "[ImageMonitor] Monitoring 2 images",
        ]
        assert lines[-1] == "[ImageMonitor] Check complete"
        newest = fake.model.repository("library/redis").newest_first()[0].name
        assert newest in result.stdout

        fake.push_tag("library/redis", "9.9.9")
        checked = runner.invoke(app, ["images", "check", "1"])
        assert checked.exit_code == 0, checked.output
        assert "requests created: 9.9.9" in checked.stdout

        listed = runner.invoke(app, ["approvals", "list"])
        assert "redis:9.9.9" in listed.stdout

        missing = runner.invoke(app, ["images", "check", "42"])
        assert missing.exit_code == 1
        assert "image 42 not found" in missing.output


def test_bad_command_line_input_is_a_message_and_exit_2_not_a_traceback(cli_env: str) -> None:
    for args, field in (
        (["images", "add", "redis", "--tag-policy", "nope"], "tag_policy"),
        (["devices", "add", "d1", "--arch", "!!"], "architecture"),
        (["rollouts", "create", "redis", "1", "--strategy", "bogus", "-d", "d1"], "strategy"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"error: {field}: ")
        assert "Traceback" not in result.output
    for args in (["devices", "add", "d1", "--label", "site"], ["rollouts", "create", "redis",
                 "1", "--label", "=shop"]):  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "must be key=value" in result.output


def test_images_add_and_watch_tags_set_the_tags_every_rescan_looks_at(cli_env: str) -> None:
    added = runner.invoke(app, ["images", "add", "app", "--namespace", "acme",
                                "--registry", "ghcr.io", "--watch-tag", "latest"])  # fmt: skip
    assert added.exit_code == 0, added.output
    image_id = added.stdout.split("Added image ", 1)[1].split(":", 1)[0]
    assert "watch tags  latest" in runner.invoke(app, ["images", "show", image_id]).stdout
    replaced = runner.invoke(app, ["images", "watch-tags", image_id, "stable", "7"])
    assert replaced.exit_code == 0, replaced.output
    assert "watches tags: stable, 7" in replaced.stdout
    bad = runner.invoke(app, ["images", "watch-tags", image_id, "-nope"])
    assert bad.exit_code == 2
    cleared = runner.invoke(app, ["images", "watch-tags", image_id])
    assert "watches tags: none" in cleared.stdout
