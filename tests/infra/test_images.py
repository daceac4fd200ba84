"""Image identity: a content digest of the build context, not of mtimes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from blaxel.core.image import ImageInstance

from infra.images import (
    ImageFactoryError,
    choose_factory,
    image_digest,
    load_image,
    resolve_factory,
)


def _image(context: Path) -> ImageInstance:
    return (
        ImageInstance.from_registry("python:3.11-slim")
        .workdir("/app")
        .add_local_dir(str(context), "/app")
    )


def test_digest_ignores_mtimes(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("print(1)\n")
    before = image_digest(_image(tmp_path))
    os.utime(tmp_path / "a.py", (1, 1))
    assert image_digest(_image(tmp_path)) == before


def test_digest_changes_with_file_content(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("print(1)\n")
    before = image_digest(_image(tmp_path))
    (tmp_path / "a.py").write_text("print(2)\n")
    assert image_digest(_image(tmp_path)) != before


def test_digest_ignores_bytecode_caches(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    before = image_digest(_image(tmp_path))
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert image_digest(_image(tmp_path)) == before


def test_digest_changes_with_the_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    assert image_digest(_image(tmp_path)) != image_digest(_image(tmp_path).env(A="1"))


def test_factory_reference_must_name_module_and_function() -> None:
    with pytest.raises(ImageFactoryError, match="expected 'module:function'"):
        resolve_factory("worker.image")


def test_unresolvable_factory_falls_back_to_the_default_image() -> None:
    assert choose_factory("no_such_pkg.image:img") == "infra.images:default_image"


def test_default_image_takes_the_context_directory(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("")
    image = load_image("infra.images:default_image", str(tmp_path))
    assert "WORKDIR /app" in image.dockerfile
