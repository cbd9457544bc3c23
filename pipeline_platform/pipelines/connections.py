"""Data source URLs: read only from each data source's environment variable, never stored.

A missing variable is one line naming the variable and the data source. URLs are never logged,
put in run config, metadata or errors: :func:`describe` gives a password-free text for messages.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.engine import make_url

from pipeline_platform.config import environment, load_settings
from pipeline_platform.registry.document import DEFAULT_DATA_SOURCE, RegistryDocument


class MissingCredentials(RuntimeError):
    """A data source's environment variable is not set (or the data source is unknown)."""


def data_source_url(
    name: str, document: RegistryDocument, environ: Mapping[str, str] | None = None
) -> str:
    """Return the URL of data source ``name`` from its environment variable.

    The ``warehouse`` data source falls back to ``PIPELINE_WAREHOUSE_URL`` or the embedded
    default when it is not declared or its variable is unset.

    Raises:
        MissingCredentials: when the variable is not set (the message names it).
    """
    env = environment(environ)
    source = next((s for s in document.data_sources if s.name == name), None)
    if source is not None and env.get(source.url_env):
        return env[source.url_env]
    if name == DEFAULT_DATA_SOURCE:
        return load_settings(env).warehouse_url
    if source is None:
        raise MissingCredentials(f"data source {name!r} is not in the registry")
    raise MissingCredentials(
        f"data source {name!r}: environment variable {source.url_env} is not set"
    )


def describe(url: str) -> str:
    """Return a URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"
