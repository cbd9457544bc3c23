"""What the routes need, built once per app: the live registry, the monitoring state, reloads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline_platform.config import Settings
from pipeline_platform.monitoring.state import StateReader
from pipeline_platform.registry.live import LiveRegistry, RegistryView


@dataclass
class ApiServices:
    """The service layer behind the routes.

    Attributes:
        settings: Runtime settings (registry, warehouse, brokers).
        registry: The live registry, re-checked every few seconds.
        state: The monitoring state reader shared with ``/metrics``.
        reload_location: Asks the Dagster webserver to reload the code location; returns a
            description, raises on failure.
    """

    settings: Settings
    registry: LiveRegistry
    state: StateReader
    reload_location: Callable[[], str]

    def view(self) -> RegistryView:
        """The current registry view (cached a few seconds)."""
        return self.registry.view()

    def answer(self, key: Any, compute: Callable[[RegistryView], Any]) -> Any:
        """Return an answer computed once per registry view."""
        view = self.view()
        return view.memo(key, lambda: compute(view))

    def close(self) -> None:
        """Release database connections."""
        self.state.close()
        self.registry.engine.dispose()


def default_reload() -> str:
    """Reload the code location through the Dagster webserver named by the environment."""
    import os

    from pipeline_platform.factory.sensors import (
        DEFAULT_LOCATION_NAME,
        LOCATION_NAME_ENV,
        reload_code_location,
    )

    return reload_code_location(os.environ.get(LOCATION_NAME_ENV, DEFAULT_LOCATION_NAME))


def build_services(
    settings: Settings, reload_location: Callable[[], str] | None = None
) -> ApiServices:
    """Build the services for ``settings`` (no connection is opened yet)."""
    from pipeline_platform.registry.database import create_registry_engine

    registry = LiveRegistry(create_registry_engine(settings.registry_url))
    return ApiServices(
        settings=settings,
        registry=registry,
        state=StateReader(settings, registry),
        reload_location=reload_location or default_reload,
    )
