"""The built-in module catalog: extractors, transformers and loaders with config JSON Schemas.

``registry init`` mirrors the catalog into the ``modules`` table; validation checks every pipeline
node's config against its module's schema; the runner executes the modules.
"""

from __future__ import annotations

from pipeline_platform.pipelines.catalog.extractors import EXTRACTORS
from pipeline_platform.pipelines.catalog.loaders import LOADERS
from pipeline_platform.pipelines.catalog.spec import ModuleKind, ModuleSpec
from pipeline_platform.pipelines.catalog.transformers import TRANSFORMERS

BUILTIN_MODULES: tuple[ModuleSpec, ...] = (*EXTRACTORS, *TRANSFORMERS, *LOADERS)
MODULES_BY_NAME: dict[str, ModuleSpec] = {module.name: module for module in BUILTIN_MODULES}

__all__ = ["BUILTIN_MODULES", "MODULES_BY_NAME", "ModuleKind", "ModuleSpec"]
