"""When a pushed image counts as built: never stalled by one missed status."""

from __future__ import annotations

import pytest

from infra.clients.blaxel_images import BuildWatch
from infra.clients.errors import Invalid


def test_deployed_after_another_status_is_done() -> None:
    watch = BuildWatch("img:1")
    assert not watch.done("DEPLOYED", "img:1", 0.0)
    assert not watch.done("BUILDING", None, 1.0)
    assert watch.done("DEPLOYED", "img:1", 2.0)


def test_deployed_with_a_new_ref_is_done_even_if_no_other_status_was_seen() -> None:
    assert BuildWatch("img:1").done("DEPLOYED", "img:2", 0.0)


def test_first_push_is_done_once_deployed_with_a_ref() -> None:
    assert BuildWatch(None).done("DEPLOYED", "img:1", 0.0)


def test_unchanged_deployed_image_is_done_after_the_grace_period_only() -> None:
    watch = BuildWatch("img:1", grace_s=20)
    assert not watch.done("DEPLOYED", "img:1", 100.0)
    assert not watch.done("DEPLOYED", "img:1", 119.0)
    assert watch.done("DEPLOYED", "img:1", 120.0)


def test_failed_build_raises() -> None:
    with pytest.raises(Invalid, match="build failed"):
        BuildWatch(None).done("FAILED", None, 0.0)


def test_a_failed_poll_does_not_count_as_another_status() -> None:
    watch = BuildWatch("img:1", grace_s=20)
    assert not watch.done(None, None, 0.0)
    assert not watch.done("DEPLOYED", "img:1", 1.0)
