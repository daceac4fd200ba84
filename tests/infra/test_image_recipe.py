"""`ImageRecipe` renders what the SDK's ImageInstance renders, and keeps the SDK off the
preview path (importing `blaxel` costs more than the rest of the program)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.image_recipe import ImageRecipe
from infra.images import REPO_ROOT, default_image, image_digest
from infra.worker_image import build_worker_image, parse_worker_image
from orchestrator_app.image import orchestrator_image
from worker.image import worker_image


def extended_worker(root: Path) -> ImageRecipe:
    (root / "tools.py").write_text("def f() -> None: ...\n")
    (root / "rules.md").write_text("rules\n")
    config = parse_worker_image(
        {
            "cma:customToolsModule": "tools.py",
            "cma:workerImage": {
                "aptPackages": ["unzip"],
                "pipPackages": ["psycopg==3.2.3"],
                "npmGlobals": ["typescript@5.6.3"],
                "files": {"/etc/rules.md": "rules.md", "/etc/dir": "."},
            },
        },
        root,
    )
    image = build_worker_image(config, root)
    assert isinstance(image, ImageRecipe)
    return image


RECIPES = {
    "worker": lambda root: worker_image(),
    "orchestrator": lambda root: orchestrator_image(),
    "default": lambda root: default_image("worker"),
    "extended worker": extended_worker,
    "every method": lambda root: (
        ImageRecipe.from_registry("debian:12")
        .apt_install("git", update=False, clean=False)
        .npm_install()
        .pip_install("x==1", extra_options="--pre")
        .run_commands("true", "false")
        .env()
        .entrypoint("python", "-m", "app")
    ),
}


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_a_recipe_renders_the_sdks_dockerfile_files_and_digest(kind: str, tmp_path: Path) -> None:
    recipe = RECIPES[kind](tmp_path)
    instance = recipe.to_instance()
    assert recipe.dockerfile == instance.dockerfile
    assert [(f.source_path, f.destination_path, f.context_name) for f in recipe.local_files] == [
        (f.source_path, f.destination_path, f.context_name) for f in instance._context.local_files
    ]
    assert image_digest(recipe) == image_digest(instance)


def test_the_program_and_the_providers_import_no_blaxel_sdk() -> None:
    code = (
        "import sys, infra.program, infra.providers.image, infra.providers.sandbox, "
        "infra.providers.server; from worker.image import worker_image; "
        "from orchestrator_app.image import orchestrator_image; "
        "from infra.images import image_digest; image_digest(worker_image()); "
        "image_digest(orchestrator_image()); print(sorted(m for m in sys.modules if m.startswith('blaxel')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
