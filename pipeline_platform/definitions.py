"""The code location root: ``dagster dev -m pipeline_platform.definitions``.

Importing this module does nothing; Dagster calls :func:`defs` to load the definitions, which
reads the registry snapshot once (or receives it back when reconstructing in a run or step
worker), translates it and returns the ``Definitions``. A run or step worker then freezes its
heap for the garbage collector (:mod:`pipeline_platform.factory.worker_heap`).
"""

from __future__ import annotations

import dagster as dg

from pipeline_platform.config import load_settings
from pipeline_platform.factory.builder import definitions_for
from pipeline_platform.factory.loader import load_snapshot
from pipeline_platform.factory.worker_heap import freeze_worker_heap


@dg.definitions
def defs() -> dg.Definitions:
    """Load the registry snapshot and translate it into Dagster definitions."""
    definitions = definitions_for(load_snapshot(load_settings()))
    freeze_worker_heap()  # a run or step worker: its loaded heap stays, skip it in collections
    return definitions
