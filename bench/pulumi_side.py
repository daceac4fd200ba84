"""The Pulumi side: a no-op preview of the full stack against the engine's floor (a preview of
an empty program on the same engine), and what a no-op `up` pushes and restarts."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.stats import Row
from emulator.server import EmulatorServer
from scripts.engine import PulumiProject, offline_env
from scripts.local_stack import LOCAL_PASSPHRASE
from tests.e2e.conftest import make_end_to_end

EMPTY_PROGRAM = {
    "Pulumi.yaml": "name: empty\nruntime: python\ndescription: the engine's floor\n",
    "__main__.py": "import pulumi  # noqa: F401  (registers nothing)\n",
}


def caching_bytecode(env: dict[str, str]) -> None:
    """Let the engine's Python processes (program, provider host) cache the project's bytecode,
    as on a machine without PYTHONDONTWRITEBYTECODE: the warm-up preview writes it and the timed
    ones read it, instead of every preview compiling the project's modules again."""
    env.pop("PYTHONDONTWRITEBYTECODE", None)


def timed_previews(project: PulumiProject, times: int) -> float:
    """The median wall time of `times` previews (seconds)."""
    walls = []
    for _ in range(times):
        start = time.perf_counter()
        project.preview()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def empty_project(tmp: Path) -> PulumiProject:
    folder = tmp / "empty-program"
    folder.mkdir(parents=True)
    for name, text in EMPTY_PROGRAM.items():
        (folder / name).write_text(text)
    env = offline_env(tmp / "empty-home", tmp / "empty-backend", LOCAL_PASSPHRASE)
    project = PulumiProject(cwd=folder, stack="floor", env=env)
    project.select_or_create()
    return project


def run(tmp: Path, previews: int) -> list[Row]:
    with EmulatorServer(data_dir=tmp / "emulator") as server:
        e2e = make_end_to_end(server, tmp)
        try:
            e2e.up_fully_wired()
            floor = empty_project(tmp)
            for project in (floor, e2e.project):
                caching_bytecode(project.env)
            floor.preview()  # warm both once (plugin discovery, bytecode) before timing
            e2e.project.preview()
            stack_wall = timed_previews(e2e.project, previews)
            floor_wall = timed_previews(floor, previews)
            unchanged = set(e2e.project.preview_changes()) == {"same"}
            blaxel = server.emulator.blaxel
            pushed = sum(p.bytes for p in blaxel.image_pushes)
            starts = len(blaxel.process_starts)
            e2e.project.up()
            pushed_by_noop = sum(p.bytes for p in blaxel.image_pushes) - pushed
            restarts = len(blaxel.process_starts) - starts
        finally:
            e2e.project.run("destroy", "--yes", check=False)
    group = "pulumi"
    return [
        Row(group, f"no-op preview of the stack (median of {previews})", stack_wall, "s"),
        Row(group, f"preview of an empty program (median of {previews})", floor_wall, "s"),
        Row(
            group,
            "stack preview / empty-program preview",
            stack_wall / floor_wall,
            "x",
            expect="≤ 1.5x",
        ),
        Row(group, "no-op preview shows only 'same'", "yes" if unchanged else "no"),
        Row(group, "bytes pushed by a no-op up", pushed_by_noop, "B", expect="= 0"),
        Row(group, "processes restarted by a no-op up", restarts, expect="= 0"),
    ]
