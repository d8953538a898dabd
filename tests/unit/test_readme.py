"""The README stands alone: its links stay in the repository, and its route tables list every
route the app serves (and none it does not)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from tagwarden.app import create_app
from tests.factories import make_settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
# Markdown links and autolinks: [text](target), <scheme://…>
LINK = re.compile(r"\]\(([^)\s]+)\)|<([a-z]+://[^>]+)>")
CELL_SPLIT = re.compile(r"(?<!\\)\|")
PATH_IN_CELL = re.compile(r"`(/[^`]*)`")


def app_without_lifespan() -> FastAPI:
    """The app as served, its routes and document, without starting it (no database)."""
    return create_app(
        make_settings("sqlite+aiosqlite:///:memory:", secret_key="readme-test-secret-0123456789")
    )


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route; a mount (the static files) counts as a GET."""
    out: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        methods = set(getattr(route, "methods", None) or {"GET"}) - {"HEAD"}
        out |= {(method, str(route.path)) for method in methods}
    return out


def readme_routes(text: str) -> set[tuple[str, str]]:
    """(method, path) of every row of the README's tables headed ``| method | path |``."""
    out: set[tuple[str, str]] = set()
    in_table = False
    for line in text.splitlines():
        if line.startswith("| method | path |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in CELL_SPLIT.split(line)[1:-1]]
        if not in_table or set(cells[0]) <= {"-"}:
            continue
        methods = cells[0].split("/")
        out |= {(m, path) for m in methods for path in PATH_IN_CELL.findall(cells[1])}
    return out


def test_every_route_of_the_app_is_in_a_readme_table_and_every_row_is_a_route() -> None:
    served = app_routes(app_without_lifespan())
    listed = readme_routes(README)
    assert served - listed == set(), "routes missing from the README"
    assert listed - served == set(), "README rows naming no route"


def test_the_readme_links_only_to_files_in_the_repository() -> None:
    targets = [a or b for a, b in LINK.findall(README)]
    assert targets, "the README links to its docs"
    for target in targets:
        assert "://" not in target, target
        path = (ROOT / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), target
        assert path.exists(), target
    assert "../" not in README, "a path outside the repository"
