"""Garbage collection in run and step workers: the loaded heap is frozen once.

A run worker imports Dagster and this project and builds the definitions: a heap of a few
hundred thousand long-lived objects that every full collection walks again, during the step
(an ingestion allocates rows by the million) and once more at interpreter exit. A worker is
short-lived and never unloads its definitions, so once they are rebuilt (a reconstruction)
the heap moves to the permanent generation with :func:`gc.freeze`: later collections only
walk what the run itself allocates. Measured side by side (mock broker, private PostgreSQL,
``dagster asset materialize``, 6 alternating rounds, medians): a 1-message run 1.93 → 1.54 s
(step 0.28 → 0.20 s, process exit after the run 0.38 → 0.06 s); 4 tables x 50,000 messages in
one run about 10-15 % more messages/s in the step.

Only workers freeze: a code server or a test process loads definitions again and again
(definitions loads are not reconstructions), and frozen objects are never freed.
"""

from __future__ import annotations

import gc

from pipeline_platform.factory import reconstruction

_frozen = False


def freeze_worker_heap() -> bool:
    """In a run or step worker, freeze the heap once (see the module docstring).

    Returns:
        True when this call froze the heap.
    """
    global _frozen
    if _frozen or not reconstruction.is_reconstruction():
        return False
    gc.freeze()
    _frozen = True
    return True
