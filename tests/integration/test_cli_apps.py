"""`tagwarden apps` on both databases: put, list, show, delete, and bad input refused with
exit code 2 and a message."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from tagwarden.audit.models import AuditEntry
from tagwarden.cli.main import app
from tagwarden.db import make_engine, make_sessionmaker
from tests.factories import add_image

runner = CliRunner()


def _image(url: str) -> int:
    async def go() -> int:
        engine = make_engine(url)
        try:
            return await add_image(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _audited(url: str) -> list[tuple[str, str]]:
    async def go() -> list[tuple[str, str]]:
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                rows = await session.execute(
                    select(AuditEntry.action, AuditEntry.actor)
                    .where(AuditEntry.entity_type == "app")
                    .order_by(AuditEntry.id)
                )
                return [(a, b) for a, b in rows.all()]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_apps_commands_put_list_show_and_delete(cli_env: str, tmp_path: Path) -> None:
    image_id = str(_image(cli_env))
    config = tmp_path / "redis.json"
    config.write_text(json.dumps({"restart": "always", "env": {"TZ": "UTC"}}))
    created = runner.invoke(
        app, ["apps", "put", "redis", "--image-id", image_id, "--config-file", str(config)]
    )
    assert created.exit_code == 0, created.output
    assert "Created app redis" in created.stdout
    replaced = runner.invoke(
        app, ["apps", "put", "redis", "--image-id", image_id, "--config", '{"restart": "no"}']
    )
    assert replaced.exit_code == 0, replaced.output
    assert "Saved app redis" in replaced.stdout

    listed = runner.invoke(app, ["apps", "list"])
    assert listed.exit_code == 0
    assert "redis" in listed.stdout
    assert "restart" in listed.stdout
    shown = runner.invoke(app, ["apps", "show", "redis"])
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["config"] == {"restart": "no"}

    deleted = runner.invoke(app, ["apps", "delete", "redis"])
    assert deleted.exit_code == 0
    missing = runner.invoke(app, ["apps", "show", "redis"])
    assert missing.exit_code == 1
    assert "app redis not found" in missing.output
    actions = _audited(cli_env)
    assert [a for a, _ in actions] == ["app.put", "app.put", "app.deleted"]
    assert all(actor.startswith("cli:") for _, actor in actions)


def test_apps_put_refuses_bad_input_with_exit_code_2(cli_env: str, tmp_path: Path) -> None:
    image_id = str(_image(cli_env))
    for args, says in [
        (["--config", '{"privileged": true}'], "privileged mode is not allowed"),
        (["--config", "{not json"], "not readable JSON"),
        (["--config-file", str(tmp_path / "missing.json")], "not readable JSON"),
        ([], "give --config JSON or --config-file FILE"),
        (["--config", '{"volumes": ["/etc:/etc"]}'], "allows no bind mounts"),
    ]:
        result = runner.invoke(app, ["apps", "put", "redis", "--image-id", image_id, *args])
        assert result.exit_code == 2, (args, result.output)
        assert says in " ".join(result.output.split()), result.output
    bad_name = runner.invoke(
        app, ["apps", "put", "Bad Name", "--image-id", image_id, "--config", "{}"]
    )
    assert bad_name.exit_code == 2
    assert "is not an app name" in bad_name.output
    assert _audited(cli_env) == []
