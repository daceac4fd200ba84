"""`cma:customToolsModule`: the path it names, and tool specs derived from the functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.custom_tools import (
    CustomToolsConfigError,
    custom_tool_specs,
    image_location,
    module_path,
    worker_location,
)

TOOLS = '''
from anthropic import beta_tool


@beta_tool
def lookup_order(order_id: str, verbose: bool = False) -> str:
    """Look up an order by its id.

    Args:
        order_id: the order's id, e.g. A1
        verbose: whether to add the order's lines
    """
    return order_id
'''


def test_specs_come_from_the_functions_name_docstring_and_signature(tmp_path: Path) -> None:
    module = tmp_path / "tools.py"
    module.write_text(TOOLS)
    (spec,) = custom_tool_specs(module_path("tools.py", tmp_path)).items()
    name, fields = spec
    assert name == "lookup_order"
    assert fields["description"] == "Look up an order by its id."
    schema = fields["input_schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["order_id"]
    assert schema["properties"]["order_id"]["description"] == "the order's id, e.g. A1"
    assert schema["properties"]["verbose"]["type"] == "boolean"


def test_a_tool_without_a_docstring_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text(
        "from anthropic import beta_tool\n@beta_tool\ndef quiet() -> str:\n    return ''\n"
    )
    with pytest.raises(
        CustomToolsConfigError, match=r"^cma:customToolsModule: tool 'quiet' has no"
    ):
        custom_tool_specs(tmp_path / "tools.py")


def test_a_module_that_fails_to_import_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(CustomToolsConfigError) as caught:
        custom_tool_specs(tmp_path / "tools.py")
    assert str(caught.value).startswith("cma:customToolsModule: ")
    assert "No module named 'not_a_module_anywhere'" in str(caught.value)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("/etc/tools.py", "must be a path relative to the project root, got '/etc/tools.py'"),
        ("", "must be a path relative to the project root, got ''"),
        ("../elsewhere.py", "'../elsewhere.py' lies outside the project"),
        ("missing.py", "'missing.py' is not a .py file or a package"),
        ("notes.txt", "'notes.txt' is not a .py file or a package"),
        ("plain_dir", "'plain_dir' is a directory without __init__.py"),
    ],
)
def test_a_path_that_names_no_module_is_a_clear_error(
    tmp_path: Path, ref: str, message: str
) -> None:
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "plain_dir").mkdir()
    with pytest.raises(CustomToolsConfigError) as caught:
        module_path(ref, tmp_path)
    assert str(caught.value) == f"cma:customToolsModule: {message}"


def test_the_module_lies_under_app_custom_tools_in_the_image(tmp_path: Path) -> None:
    assert image_location(tmp_path / "orders") == "/app/custom_tools/orders"
    assert image_location(tmp_path / "tools.py") == "/app/custom_tools/tools.py"
    assert worker_location(tmp_path / "tools.py") == "custom_tools/tools.py"
