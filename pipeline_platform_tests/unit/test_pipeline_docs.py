"""docs/pipelines.md carries the module reference generated from the catalog."""

from __future__ import annotations

from pathlib import Path

from pipeline_platform.pipelines.catalog import BUILTIN_MODULES
from pipeline_platform.pipelines.catalog.reference import replace_reference

DOC = Path(__file__).parents[2] / "docs" / "pipelines.md"


def test_module_reference_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert replace_reference(text) == text, (
        "docs/pipelines.md is stale: run "
        "`python -m pipeline_platform.pipelines.catalog.reference docs/pipelines.md`"
    )
    for module in BUILTIN_MODULES:
        assert f"#### {module.name}\n" in text


def test_reference_changes_with_the_catalog() -> None:
    text = DOC.read_text(encoding="utf-8")
    stale = text.replace("#### limit_rows", "#### limit_rows_old")
    assert replace_reference(stale) == text
