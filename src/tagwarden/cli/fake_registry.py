"""`tagwarden fake-registry`: a local Docker Hub + OCI registry for demos without internet."""

from __future__ import annotations

import shlex

import typer

from tagwarden.testing.fake_registry import FakeRegistry
from tagwarden.testing.fake_server import demo_environment, seed_demo, serve


def fake_registry(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(5055, min=1, max=65535, help="port to listen on"),
    repos: int = typer.Option(0, min=0, max=10_000, help="extra generated repositories"),
    tags: int = typer.Option(30, min=0, max=20_000, help="tags per generated repository"),
    latency_ms: int = typer.Option(0, min=0, max=60_000, help="delay added to every response"),
) -> None:
    """Serve redis, nginx, grafana/grafana and ghcr.io/org/app (and generated ones) until Ctrl-C."""
    # Clients must be sent back to an address they can reach, not the wildcard one.
    public_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    base_url = f"http://{public_host}:{port}"
    fake = FakeRegistry(public_url=base_url)
    names = seed_demo(fake, repos=repos, tags=tags)
    fake.faults.latency_ms = latency_ms
    typer.echo(f"fake registry on {base_url}: {len(names)} repositories")
    for name in names[:8]:
        typer.echo(f"  {name} ({len(fake.model.repository(name).tags)} tags)")
    if len(names) > 8:
        typer.echo(f"  … and {len(names) - 8} more")
    typer.echo("point tagwarden at it with:")
    for key, value in demo_environment(base_url).items():
        typer.echo(f"  export {key}={shlex.quote(value)}")
    typer.echo("(ghcr.io images are served by the registry API; Ctrl-C stops)")
    serve(host, port, fake)
