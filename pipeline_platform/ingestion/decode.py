"""Decoding and validation of raw Kafka messages, and the per-batch transform.

A message is the tuple ``(partition, offset, key, value)``. :func:`transform_batch` turns a list
of them into rows (deduplicated by upsert key, last wins) and dead letters, calling orjson, the
JSON Schema validator compiled once (jsonschema-rs, by the schema's declared draft; see
:mod:`pipeline_platform.json_schemas`), and the compiled mapping.

Dead-letter reasons (stable prefixes, followed by detail):

- ``empty message``: no value or zero bytes
- ``oversized message``: more than ``max_message_bytes``
- ``not UTF-8``: the bytes are not valid UTF-8
- ``malformed JSON``: not parseable JSON
- ``not a JSON object``: valid JSON that is not an object
- ``schema violation``: the topic's JSON Schema refused it
- ``missing key``: no Kafka key while ``key_required`` is set
- ``missing required field`` / ``column X (source Y): ...``: from the mapping
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson

from pipeline_platform.ingestion.mapping import CompiledMapping
from pipeline_platform.json_schemas import SchemaViolation, Validator
from pipeline_platform.json_schemas import compile_validator as compile_validator
from pipeline_platform.warehouse import DeadLetterRow

#: ``(partition, offset, key, value)``
RawMessage = tuple[int, int, bytes | None, bytes | None]

DEFAULT_MAX_MESSAGE_BYTES = 1_048_576


@dataclass(frozen=True)
class DecodeOptions:
    """How messages are checked before mapping.

    Attributes:
        max_message_bytes: Larger values are dead-lettered as oversized.
        key_required: Dead-letter messages without a Kafka key. Off by default: the upsert key
            comes from the message body, so a null Kafka key is normal.
    """

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    key_required: bool = False


#: A message that could not be ingested, with its reason: ``(partition, offset, key, value,
#: reason)``.
DeadLetter = DeadLetterRow


@dataclass
class PreparedBatch:
    """The outcome of transforming one batch of messages.

    Attributes:
        rows: Rows to write (deduplicated by upsert key when there is one).
        dead_letters: Messages refused, with reasons.
        messages: Number of messages transformed.
        last_offsets: Highest offset seen per partition.
    """

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    messages: int = 0
    last_offsets: dict[int, int] = field(default_factory=dict)


def decode_reason(value: bytes | None, error: Exception) -> str:
    """Explain why ``value`` failed to decode as JSON."""
    if value is None or len(value) == 0:
        return "empty message"
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as unicode_error:
        return f"not UTF-8: {unicode_error}"
    return f"malformed JSON: {error}"


def decode_message(
    value: bytes | None,
    key: bytes | None,
    validator: Validator | None,
    options: DecodeOptions,
) -> dict[str, Any] | str:
    """Decode and validate one message (the slow, readable path; the batch loop inlines it).

    Args:
        value: The message bytes.
        key: The Kafka key.
        validator: Compiled JSON Schema validator, or None.
        options: Size and key rules.

    Returns:
        The JSON object, or a dead-letter reason.
    """
    if not value:
        return "empty message"
    if len(value) > options.max_message_bytes:
        return f"oversized message: {len(value)} bytes > {options.max_message_bytes}"
    if options.key_required and key is None:
        return "missing key: the message has no Kafka key"
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        return decode_reason(value, error)
    if type(document) is not dict:
        return f"not a JSON object: got {type(document).__name__}"
    if validator is not None:
        try:
            validator(document)
        except SchemaViolation as error:
            return f"schema violation: {error.message}"
    return document


def transform_batch(
    messages: Sequence[RawMessage],
    mapping: CompiledMapping,
    validator: Validator | None,
    options: DecodeOptions,
) -> PreparedBatch:
    """Decode, validate and map a batch of messages.

    Rows are deduplicated by the upsert key, the last message for a key winning; without a key
    every row is kept in order.

    Args:
        messages: ``(partition, offset, key, value)`` tuples, in offset order per partition.
        mapping: The compiled mapping of the target table.
        validator: Compiled JSON Schema validator, or None.
        options: Size and key rules.

    Returns:
        Rows, dead letters, the message count and the last offset per partition.
    """
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    build = mapping.build
    max_bytes = options.max_message_bytes
    key_required = options.key_required
    schema_error = SchemaViolation
    dead: list[DeadLetter] = []
    last: dict[int, int] = {}
    key_indexes = mapping.key_indexes
    keyed: dict[Any, tuple[Any, ...]] = {}
    plain: list[tuple[Any, ...]] = []
    # Rows go to ``keyed[key_of(row)]`` (last wins) or, without a key, to ``plain``.
    key_of = itemgetter(*key_indexes) if key_indexes else None
    for partition, offset, key, value in messages:
        reason: str
        if not value:
            reason = "empty message"
        elif len(value) > max_bytes:
            reason = f"oversized message: {len(value)} bytes > {max_bytes}"
        elif key_required and key is None:
            reason = "missing key: the message has no Kafka key"
        else:
            try:
                document = loads(value)
            except decode_error as error:
                reason = decode_reason(value, error)
            else:
                if type(document) is not dict:
                    reason = f"not a JSON object: got {type(document).__name__}"
                else:
                    if validator is not None:
                        try:
                            validator(document)
                        except schema_error as error:
                            dead.append(
                                DeadLetter(
                                    partition,
                                    offset,
                                    key,
                                    value,
                                    f"schema violation: {error.message}",
                                )
                            )
                            continue
                    row = build(document)
                    if type(row) is tuple:
                        if key_of is None:
                            plain.append(row)
                        else:
                            keyed[key_of(row)] = row
                        continue
                    reason = row  # type: ignore[assignment]
        dead.append(DeadLetter(partition, offset, key, value, reason))
    # Offsets: the caller knows its partitions; record the highest offset per partition cheaply.
    for partition, offset, _key, _value in _tail_per_partition(messages):
        last[partition] = offset
    rows = list(keyed.values()) if key_indexes else plain
    return PreparedBatch(rows=rows, dead_letters=dead, messages=len(messages), last_offsets=last)


def _tail_per_partition(messages: Sequence[RawMessage]) -> list[RawMessage]:
    """Return, per partition, the message with the highest offset."""
    best: dict[int, RawMessage] = {}
    for message in reversed(messages):
        if message[0] not in best:
            best[message[0]] = message
    # Offsets are increasing within a partition, so the last one seen is the highest.
    return list(best.values())


def row_sources(
    messages: Sequence[RawMessage],
    mapping: CompiledMapping,
    validator: Validator | None,
    options: DecodeOptions,
) -> list[RawMessage]:
    """Return, per row of ``transform_batch(messages, ...)``, the message it was built from.

    The rare path (rows the database refused): it repeats the transform, keeping the message
    instead of the row, so the hot loop carries no provenance.
    """
    key_of = itemgetter(*mapping.key_indexes) if mapping.key_indexes else None
    keyed: dict[Any, RawMessage] = {}
    plain: list[RawMessage] = []
    for message in messages:
        document = decode_message(message[3], message[2], validator, options)
        if type(document) is str:
            continue
        row = mapping.build(document)
        if type(row) is not tuple:
            continue
        if key_of is None:
            plain.append(message)
        else:
            keyed[key_of(row)] = message
    return list(keyed.values()) if key_of is not None else plain
