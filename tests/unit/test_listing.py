"""``dockerdata.listed``: one line of ``docker ps --format LISTING``, and when it says all
that ``inspect`` would (``tests/integration/test_status_listing.py`` holds it to the engine)."""

from __future__ import annotations

import json

import pytest

from compose_rollback.dockerdata import Listed, listed

IMAGE = "sha256:" + "c" * 64


def _line(status: str, *, state: str = "running", names: str = "shop-web-1",
          image: str = IMAGE, oneoff: str = "False") -> str:
    return json.dumps({"id": "f" * 64, "names": names, "state": state, "status": status,
                       "service": "web", "oneoff": oneoff, "image": image})


@pytest.mark.parametrize(("status", "health"), [
    ("Up 5 minutes", None),
    ("Up Less than a second", None),
    ("Up About a minute (healthy)", "healthy"),
    ("Up 3 hours (unhealthy)", "unhealthy"),
    ("Up 2 seconds (health: starting)", "starting"),
])
def test_a_running_container_line_says_it_all(status: str, health: str | None) -> None:
    assert listed(_line(status)) == Listed(id="f" * 64, name="shop-web-1", service="web",
                                           oneoff=False, status="running", health=health,
                                           image_id=IMAGE, conclusive=True)


@pytest.mark.parametrize(("status", "state", "names", "image"), [
    ("Exited (3) 5 seconds ago", "exited", "shop-web-1", IMAGE),  # its last health unshown
    ("Restarting (1) 2 seconds ago", "restarting", "shop-web-1", IMAGE),
    ("Up 3 minutes (Paused)", "paused", "shop-web-1", IMAGE),
    ("Created", "created", "shop-web-1", IMAGE),
    ("Up 3 minutes (something new)", "running", "shop-web-1", IMAGE),  # a text we do not know
    ("Up 3 minutes", "running", "shop-web-1", ""),  # made outside Compose: no image label
    ("Up 3 minutes", "running", "shop-web-1", "reg/app@sha256:" + "a" * 64),  # not an id
    ("Up 3 minutes", "running", "shop-web-1,other/alias", IMAGE),  # a legacy link's name
])
def test_a_line_that_cannot_say_it_all_is_left_to_inspect(status: str, state: str,
                                                          names: str, image: str) -> None:
    found = listed(_line(status, state=state, names=names, image=image))
    assert not found.conclusive
    assert (found.status, found.image_id) == (state, image)


def test_one_off_runs_are_marked() -> None:
    assert listed(_line("Up 1 second", oneoff="True")).oneoff is True


@pytest.mark.parametrize("line", ["not json", "[1, 2]", '{"id": "x"}', "null"])
def test_a_line_that_is_no_listing_is_an_error(line: str) -> None:
    with pytest.raises((ValueError, KeyError)):
        listed(line)
