"""Routers and admin views stay thin: they run no SQL of their own (DESIGN.md, file roles).

Cycles between packages are import-linter's to find (``make lint``); this reads the source of
every router and view for what import-linter cannot see: a query built or a session driven."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tagwarden"
EDGES = sorted([*SRC.glob("*/router.py"), *SRC.glob("web/views_*.py")])
# A route takes its session as a dependency and hands it on; typing it is all it may do.
ALLOWED_SQLALCHEMY = {"sqlalchemy.ext.asyncio"}
SESSION_METHODS = {
    "execute",
    "scalar",
    "scalars",
    "get",
    "add",
    "add_all",
    "delete",
    "flush",
    "merge",
    "refresh",
    "stream",
    "commit",
    "rollback",
    "begin",
    "begin_nested",
}


def sql_in(source: str) -> list[str]:
    """What in ``source`` runs SQL: sqlalchemy imports beyond the session type, and calls of
    a session's query and unit-of-work methods."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root == "sqlalchemy" and node.module not in ALLOWED_SQLALCHEMY:
                found.append(f"line {node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] == "sqlalchemy"
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SESSION_METHODS
            and isinstance(node.func.value, ast.Name)
            and "session" in node.func.value.id
        ):
            found.append(f"line {node.lineno}: {node.func.value.id}.{node.func.attr}(…)")
    return found


def test_the_edges_are_found() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in EDGES}
    assert {"rollouts/router.py", "catalogue/router.py", "web/views_rollouts.py"} <= names


@pytest.mark.parametrize("path", EDGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_router_or_view_runs_no_sql(path: Path) -> None:
    assert sql_in(path.read_text()) == []


def test_the_check_sees_a_query_and_a_session_call() -> None:
    source = (
        "from sqlalchemy import select\n"
        "from sqlalchemy.ext.asyncio import AsyncSession\n"
        "async def route(session: AsyncSession) -> None:\n"
        "    await session.execute(select(1))\n"
        "    await session.flush()\n"
    )
    assert sql_in(source) == [
        "line 1: from sqlalchemy import …",
        "line 4: session.execute(…)",
        "line 5: session.flush(…)",
    ]
