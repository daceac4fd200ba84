"""`cma:workerImage`: errors at preview naming the key, and what the extras add to the image
and to its digest (a changed custom tool or file is a new digest, an unchanged one is not)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.images import as_instance, image_digest
from infra.worker_image import WorkerImageError, build_worker_image, parse_worker_image

TOOL = '''
from anthropic import beta_tool


@beta_tool
def lookup_order(order_id: str) -> str:
    """Look up an order."""
    return "{answer}"
'''
FACTORY = """
from worker.image import worker_image


def image():
    return worker_image().env(TEAM="orders")


def not_an_image():
    return "FROM scratch"


def broken():
    raise RuntimeError("no base")
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A project root with a tools module, a config file and an image factory module."""
    (tmp_path / "tools.py").write_text(TOOL.format(answer="shipped"))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "rules.md").write_text("be careful\n")
    (tmp_path / "factory_mod_for_tests.py").write_text(FACTORY)
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("factory_mod_for_tests", None)


def problems(values: dict[str, Any], root: Path) -> list[str]:
    with pytest.raises(WorkerImageError) as caught:
        parse_worker_image(values, root)
    return caught.value.problems


def image_config(**extension: Any) -> dict[str, Any]:
    return {"cma:workerImage": extension}


@pytest.mark.parametrize(
    ("extension", "expected"),
    [
        (
            {"pipPackages": ["psycopg==3.2.3", "requests>=2"]},
            "cma:workerImage.pipPackages[1]: 'requests>=2' is not pinned as name==version",
        ),
        (
            {"pipPackages": ["requests"]},
            "cma:workerImage.pipPackages[0]: 'requests' is not pinned as name==version",
        ),
        (
            {"pipPackages": ["requests==2.*"]},
            "cma:workerImage.pipPackages[0]: 'requests==2.*' is not pinned",
        ),
        (
            {"aptPackages": ["postgresql-client", "Bad Name"]},
            "cma:workerImage.aptPackages[1]: 'Bad Name' is not a Debian package name",
        ),
        (
            {"aptPackages": ["curl; rm -rf /"]},
            "cma:workerImage.aptPackages[0]: 'curl; rm -rf /' is not a Debian package name",
        ),
        (
            {"npmGlobals": ["typescript@5.6.3", "Not Valid"]},
            "cma:workerImage.npmGlobals[1]: 'Not Valid' is not an npm package name",
        ),
        ({"aptPackages": "curl"}, "cma:workerImage.aptPackages: Input should be a valid list"),
        ({"colour": "red"}, "cma:workerImage.colour: not a known key (known: aptPackages,"),
        (
            {"image": "Not A Ref!"},
            "cma:workerImage.image: 'Not A Ref!' is not an image reference",
        ),
        (
            {"image": "registry.example.com/worker:1.4", "aptPackages": ["curl"]},
            "cma:workerImage.image: a prebuilt image is used as is; unset aptPackages",
        ),
        (
            {"files": {"relative/dest": "config/rules.md"}},
            "cma:workerImage.files['relative/dest']: the image path must be absolute",
        ),
        (
            {"files": {"/etc/rules.md": "config/missing.md"}},
            "cma:workerImage.files['/etc/rules.md']: 'config/missing.md' does not exist",
        ),
        (
            {"files": {"/etc/passwd": "../../etc/passwd"}},
            "cma:workerImage.files['/etc/passwd']: '../../etc/passwd' must be a path inside",
        ),
        (
            {"factory": "no_such_module_anywhere:image"},
            "cma:workerImage.factory: image factory 'no_such_module_anywhere:image': cannot import",
        ),
        (
            {"factory": "factory_mod_for_tests:missing"},
            "cma:workerImage.factory: image factory 'factory_mod_for_tests:missing': missing is "
            "not a function",
        ),
        (
            {"factory": "factory_mod_for_tests"},
            "cma:workerImage.factory: image factory 'factory_mod_for_tests': expected "
            "'module:function'",
        ),
        (
            {"factory": "factory_mod_for_tests:not_an_image"},
            "cma:workerImage.factory: factory_mod_for_tests:not_an_image returned str, not an "
            "ImageInstance",
        ),
        (
            {"factory": "factory_mod_for_tests:broken"},
            "cma:workerImage.factory: calling factory_mod_for_tests:broken raised "
            "RuntimeError('no base')",
        ),
    ],
)
def test_a_bad_value_is_an_error_at_preview_naming_its_key(
    project: Path, extension: dict[str, Any], expected: str
) -> None:
    (problem,) = problems(image_config(**extension), project)
    assert problem.startswith(expected), problem


def test_a_prebuilt_image_cannot_carry_custom_tools(project: Path) -> None:
    values = {"cma:customToolsModule": "tools.py", **image_config(image="worker:1")}
    (problem,) = problems(values, project)
    assert problem.startswith("cma:workerImage.image: a prebuilt image cannot carry")


def test_a_missing_custom_tools_module_is_named_by_its_key(project: Path) -> None:
    assert problems({"cma:customToolsModule": "nope.py"}, project) == [
        "cma:customToolsModule: 'nope.py' is not a .py file or a package"
    ]


def test_the_extension_arrives_as_json_text_or_as_an_object(project: Path) -> None:
    extension = {"aptPackages": ["unzip"], "pipPackages": ["psycopg[binary]==3.2.3"]}
    as_text = parse_worker_image({"cma:workerImage": json.dumps(extension)}, project)
    assert as_text == parse_worker_image(image_config(**extension), project)
    assert as_text.pip_packages == ["psycopg[binary]==3.2.3"]


def test_the_extras_are_installed_on_top_of_the_default_image(project: Path) -> None:
    config = parse_worker_image(
        {
            "cma:customToolsModule": "tools.py",
            **image_config(
                aptPackages=["postgresql-client"],
                pipPackages=["psycopg==3.2.3"],
                npmGlobals=["typescript@5.6.3"],
                files={"/etc/agent/rules.md": "config/rules.md"},
            ),
        },
        project,
    )
    dockerfile = build_worker_image(config, project).dockerfile
    assert "install -y --no-install-recommends postgresql-client" in dockerfile
    assert "pip install --no-cache-dir psycopg==3.2.3" in dockerfile
    assert "npm install -g typescript@5.6.3" in dockerfile
    assert "COPY extra-file-0 /etc/agent/rules.md" in dockerfile
    assert "COPY custom-tools-tools.py /app/custom_tools/tools.py" in dockerfile
    assert 'ENV CMA_CUSTOM_TOOLS="custom_tools/tools.py"' in dockerfile  # from WORKDIR /app
    assert "COPY worker /app/worker" in dockerfile  # still the worker


def test_a_factory_replaces_the_default_image_and_keeps_the_extras(project: Path) -> None:
    config = parse_worker_image(
        image_config(factory="factory_mod_for_tests:image", aptPackages=["unzip"]), project
    )
    dockerfile = build_worker_image(config, project).dockerfile
    assert 'ENV TEAM="orders"' in dockerfile
    assert dockerfile.rstrip().endswith("rm -rf /var/lib/apt/lists/*")


def test_a_changed_custom_tool_is_a_new_digest_and_an_unchanged_one_is_not(project: Path) -> None:
    config = parse_worker_image({"cma:customToolsModule": "tools.py"}, project)
    first = image_digest(build_worker_image(config, project))
    assert image_digest(build_worker_image(config, project)) == first
    (project / "tools.py").write_text(TOOL.format(answer="delayed"))
    assert image_digest(build_worker_image(config, project)) != first


def test_a_changed_extra_file_is_a_new_digest(project: Path) -> None:
    config = parse_worker_image(image_config(files={"/etc/rules.md": "config"}), project)
    first = image_digest(build_worker_image(config, project))
    (project / "config" / "rules.md").write_text("be bold\n")
    assert image_digest(build_worker_image(config, project)) != first


def test_the_digest_does_not_depend_on_the_checkout_path(tmp_path: Path) -> None:
    digests = []
    for name in ("a", "b"):
        root = tmp_path / name / "deeper"
        root.mkdir(parents=True)
        (root / "tools.py").write_text(TOOL.format(answer="shipped"))
        config = parse_worker_image({"cma:customToolsModule": "tools.py"}, root)
        digests.append(image_digest(build_worker_image(config, root)))
    assert digests[0] == digests[1]


def test_no_extension_is_the_default_worker_image(project: Path) -> None:
    from worker.image import worker_image

    config = parse_worker_image({}, project)
    assert build_worker_image(config, project).dockerfile == worker_image().dockerfile


def test_the_build_context_holds_every_copied_file(project: Path) -> None:
    """The SDK writes each context name at the top of the context: they must be flat names."""
    config = parse_worker_image(
        {
            "cma:customToolsModule": "tools.py",
            **image_config(files={"/etc/rules.md": "config/rules.md", "/etc/cfg": "config"}),
        },
        project,
    )
    context = as_instance(build_worker_image(config, project)).write_temp()
    try:
        assert (context / "custom-tools-tools.py").read_text() == TOOL.format(answer="shipped")
        assert (context / "extra-file-1").read_text() == "be careful\n"
        assert (context / "extra-file-0" / "rules.md").exists()
    finally:
        shutil.rmtree(context, ignore_errors=True)
