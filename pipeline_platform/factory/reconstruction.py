"""The one module that touches Dagster's private definitions-loading API.

Run and step workers rebuild the code location from a snapshot captured when the code server
loaded it, so they never query the registry again. In dagster 1.13.27,
``Definitions.with_reconstruction_metadata`` alone did not stop those re-queries; registering the
payload as *pending* reconstruction metadata on the current ``DefinitionsLoadContext`` did:
Dagster stores it with the repository load data (in the run's execution plan snapshot) and hands
it back to workers, which load with ``DefinitionsLoadType.RECONSTRUCTION``.

If a Dagster upgrade moves these names, only this module changes.
"""

from __future__ import annotations

import logging

from dagster._core.definitions.definitions_load_context import (
    DefinitionsLoadContext,
    DefinitionsLoadType,
)

logger = logging.getLogger(__name__)


def is_reconstruction() -> bool:
    """Return True when Dagster rebuilds definitions it loaded before (run or step worker)."""
    return DefinitionsLoadContext.get().load_type == DefinitionsLoadType.RECONSTRUCTION


def recalled_payload(key: str) -> str | None:
    """Return the payload stored under ``key`` by an earlier load of the same definitions.

    That is the reconstruction metadata handed to a run or step worker, or a payload already
    registered in the current load context (Dagster's CLI loads a repository twice in one process
    under one context; a fresh code-server load always gets a fresh context).

    Args:
        key: The reconstruction metadata key.

    Returns:
        The string given to :func:`remember_payload`, or None when this is a fresh load.
    """
    context = DefinitionsLoadContext.get()
    if context.load_type == DefinitionsLoadType.RECONSTRUCTION:
        value = context.reconstruction_metadata.get(key)
        if isinstance(value, str):
            return value
    pending = context.get_pending_reconstruction_metadata().get(key)
    return pending if isinstance(pending, str) else None


def remember_payload(key: str, payload: str) -> None:
    """Attach ``payload`` to the definitions being loaded so that workers get it back.

    Called on every load (also during reconstruction, so a run worker passes the payload on to
    its step workers).

    Args:
        key: The reconstruction metadata key.
        payload: A string (Dagster requires serialized values).
    """
    DefinitionsLoadContext.get().add_to_pending_reconstruction_metadata(key, payload)


def code_location_name() -> str | None:
    """Return the name of the code location being loaded, when the loading harness reports it."""
    try:
        return DefinitionsLoadContext.get().code_location_name
    except Exception:  # pragma: no cover - private API drift
        logger.debug("code location name not available", exc_info=True)
        return None
