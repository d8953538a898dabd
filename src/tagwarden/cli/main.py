"""The `tagwarden` command: one small module per command group."""

from __future__ import annotations

import typer

from tagwarden import __version__
from tagwarden.cli import (
    approvals,
    apps,
    db,
    demo,
    devices,
    fake_registry,
    images,
    monitor,
    notify,
    osv,
    rollouts,
    rules,
    serve,
    simulate,
    tokens,
)

app = typer.Typer(
    help="tagwarden: discover, approve and roll out container image tags.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(tokens.app, name="token")
app.add_typer(images.app, name="images")
app.add_typer(approvals.app, name="approvals")
app.add_typer(monitor.app, name="monitor")
images.app.command("check")(monitor.check_image)
app.command("fake-registry")(fake_registry.fake_registry)
# The command groups (monitor, devices, rollouts, …) register below.
app.add_typer(devices.app, name="devices")
app.add_typer(rollouts.app, name="rollouts")
app.add_typer(apps.app, name="apps")
app.add_typer(notify.app, name="notify")
app.add_typer(rules.app, name="rules")
app.add_typer(osv.app, name="osv")
app.command("simulate-fleet")(simulate.simulate_fleet)
app.command("demo")(demo.demo)


@app.command("version")
def version() -> None:
    """Print tagwarden's version."""
    print(__version__)
