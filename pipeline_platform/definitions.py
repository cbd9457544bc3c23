"""The code location root: ``dagster dev -m pipeline_platform.definitions``.

Importing this module does nothing; Dagster calls :func:`defs` to load the definitions, which
reads the registry snapshot once (or receives it back when reconstructing in a run or step
worker), translates it and returns the ``Definitions``.
"""

from __future__ import annotations

import dagster as dg

from pipeline_platform.config import load_settings
from pipeline_platform.factory.builder import definitions_for
from pipeline_platform.factory.loader import load_snapshot


@dg.definitions
def defs() -> dg.Definitions:
    """Load the registry snapshot and translate it into Dagster definitions."""
    return definitions_for(load_snapshot(load_settings()))
