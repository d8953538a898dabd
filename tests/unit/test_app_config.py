"""The app config's bind-mount rule, as a pure function: roots compared by whole path
components, no bind mount at all without roots."""

from __future__ import annotations

import pytest

from tagwarden.apps.schemas import is_clean_absolute
from tagwarden.apps.service import check_binds, within
from tagwarden.config import Settings
from tagwarden.errors import InvalidInput


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("/srv/data", True),
        ("/srv/data/x/y", True),
        ("/srv/data-other", False),
        ("/srv", False),
        ("/etc", False),
    ],
)
def test_a_path_is_within_a_root_only_by_whole_components(path: str, inside: bool) -> None:
    assert within(path, ["/srv/data"]) is inside


@pytest.mark.parametrize(
    "path", ["/a/../b", "/a/./b", "//a", "/a/", "a/b", "/a\x00b", "/a:b", "/.."]
)
def test_only_clean_absolute_paths_are_clean(path: str) -> None:
    assert not is_clean_absolute(path)


def test_without_roots_no_bind_mount_is_allowed_but_named_volumes_are() -> None:
    check_binds({"volumes": ["data:/data"]}, [])
    with pytest.raises(InvalidInput, match="allows no bind mounts"):
        check_binds({"volumes": ["/srv/data:/data"]}, [])
    with pytest.raises(InvalidInput, match="outside the allowed roots"):
        check_binds({"volumes": ["/srv/data:/data"]}, ["/srv/other"])


def test_bind_roots_must_be_absolute_and_are_normalised() -> None:
    assert Settings(app_bind_roots=["/srv/data/"]).app_bind_roots == ["/srv/data"]
    for bad in (["srv"], ["/srv/../etc"]):
        with pytest.raises(ValueError, match="absolute path without"):
            Settings(app_bind_roots=bad)
