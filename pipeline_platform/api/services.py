"""What the routes need, built once per app: the live registry, the monitoring state, reloads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from pipeline_platform.config import Settings
from pipeline_platform.monitoring.state import PlatformState, StateReader
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

    async def answer_async(self, key: Any, compute: Callable[[RegistryView], Any]) -> Any:
        """Like :meth:`answer`, from an event loop: never waits for the database once warm."""
        view = self.registry.current()
        if view is None:
            view = await run_in_threadpool(self.registry.view)
        return view.memo(key, lambda: compute(view))

    async def state_async(self) -> PlatformState:
        """The monitoring state, from an event loop: never waits once a first state exists."""
        state = self.state.current()
        if state is None:
            state = await run_in_threadpool(self.state.read)
        return state

    def close(self) -> None:
        """Release database connections."""
        self.state.close()
        self.registry.engine.dispose()


def default_reload() -> str:
    """Reload the code location through the Dagster webserver named by the environment.

    The location is ``PIPELINE_DAGSTER_LOCATION_NAME`` when set; otherwise every location of
    the webserver's workspace (``dagster dev -m pipeline_platform.definitions`` names it after
    the module).
    """
    from pipeline_platform.config import read_environment
    from pipeline_platform.factory.sensors import reload_code_location

    name = read_environment().location_name
    names = [name] if name else _workspace_locations()
    return "; ".join(reload_code_location(location) for location in names)


def _workspace_locations() -> list[str]:
    import httpx

    from pipeline_platform.config import read_environment

    values = read_environment()
    host, port = values.webserver_host, values.webserver_port
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
    response = httpx.post(f"http://{host}:{port}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    workspace = (response.json().get("data") or {}).get("workspaceOrError") or {}
    names = [entry["name"] for entry in workspace.get("locationEntries") or []]
    if not names:
        raise RuntimeError(f"the Dagster webserver at {host}:{port} lists no code location")
    return names


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
