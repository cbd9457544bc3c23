"""The write pipeline of one worker: transform batch N+1 while batch N is written."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from pipeline_platform.ingestion.decode import (
    DeadLetter,
    DecodeOptions,
    PreparedBatch,
    RawMessage,
    Validator,
    row_sources,
    transform_batch,
)
from pipeline_platform.ingestion.mapping import CompiledMapping
from pipeline_platform.ingestion.offsets import offset_updates
from pipeline_platform.ingestion.writer import write_batch
from pipeline_platform.warehouse import OffsetUpdates, RejectedRow, TargetTable, Warehouse

logger = logging.getLogger(__name__)


#: How many recent dead letters a run keeps for its materialization metadata.
RECENT_DEAD_LETTERS = 5


@dataclass
class BatchTotals:
    """Counts over the batches of one run, and its last few dead letters."""

    messages: int = 0
    rows: int = 0
    dead: int = 0
    recent_dead: list[DeadLetter] = field(default_factory=list)

    def add(self, prepared: PreparedBatch, refused: Sequence[DeadLetter] = ()) -> None:
        """Count one committed batch (``refused``: messages whose rows the database refused)."""
        self.messages += prepared.messages
        self.rows += len(prepared.rows) - len(refused)
        self.dead += len(prepared.dead_letters) + len(refused)
        self._keep([*prepared.dead_letters[-RECENT_DEAD_LETTERS:], *refused])

    def merge(self, other: BatchTotals) -> None:
        """Add another worker's totals."""
        self.messages += other.messages
        self.rows += other.rows
        self.dead += other.dead
        self._keep(other.recent_dead)

    def _keep(self, dead_letters: Sequence[DeadLetter]) -> None:
        if dead_letters:
            self.recent_dead = [*self.recent_dead, *dead_letters][-RECENT_DEAD_LETTERS:]


class BatchPipeline:
    """Transform batch N+1 while batch N is written (one writer thread, commits in order).

    The database connection is used only by the writer thread while a write is in flight.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        target: TargetTable,
        mapping: CompiledMapping,
        validator: Validator | None,
        options: DecodeOptions,
        *,
        asset_key: str,
        topic: str,
        run_id: str,
        expected: dict[int, int | None],
        on_commit: Callable[[OffsetUpdates], None] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """Set up the pipeline.

        Args:
            warehouse: The connected warehouse.
            target: The ensured target table.
            mapping: The compiled mapping.
            validator: Compiled JSON Schema validator, or None.
            options: Size and key rules.
            asset_key: ``<data_source>/<table>``.
            topic: Topic name.
            run_id: The run id.
            expected: Stored next offset per partition (None: no row); updated as batches go.
            on_commit: Called with each batch's offset updates after its database commit.
            progress: Called with a one-line progress message after each commit.
        """
        self.warehouse = warehouse
        self.target = target
        self.mapping = mapping
        self.validator = validator
        self.options = options
        self.asset_key = asset_key
        self.topic = topic
        self.run_id = run_id
        self.expected = expected
        self.on_commit = on_commit
        self.progress = progress

    def _locator(
        self, messages: Sequence[RawMessage]
    ) -> Callable[[Sequence[RejectedRow]], list[DeadLetter]]:
        def locate(rejected: Sequence[RejectedRow]) -> list[DeadLetter]:
            sources = row_sources(messages, self.mapping, self.validator, self.options)
            return [DeadLetter(*sources[r.index], r.reason) for r in rejected]

        return locate

    def _write(
        self, messages: Sequence[RawMessage], prepared: PreparedBatch, updates: OffsetUpdates
    ) -> list[DeadLetter]:
        return write_batch(
            self.warehouse,
            self.target,
            prepared.rows,
            prepared.dead_letters,
            updates,
            asset_key=self.asset_key,
            topic=self.topic,
            run_id=self.run_id,
            locate=self._locator(messages),
        )

    def run(self, batches: Iterable[tuple[list[RawMessage], dict[int, int]]]) -> BatchTotals:
        """Transform and write every batch.

        Args:
            batches: ``(messages, positions)`` pairs as yielded by the reader.

        Returns:
            The totals over committed batches.

        Raises:
            FencedError: Another run committed a range first.
        """
        totals = BatchTotals()
        started = time.perf_counter()
        Job = tuple[Future[list[DeadLetter]], OffsetUpdates, PreparedBatch]
        inflight: Job | None = None

        def flush(job: Job) -> None:
            future, updates, prepared = job
            refused = future.result()
            totals.add(prepared, refused)
            if self.on_commit is not None:
                self.on_commit(updates)
            if self.progress is not None:
                elapsed = max(time.perf_counter() - started, 1e-9)
                self.progress(
                    f"{self.topic}: {totals.messages} messages, {totals.rows} rows, "
                    f"{totals.dead} dead letters, {totals.messages / elapsed:,.0f} msg/s"
                )

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pp-writer") as pool:
            try:
                for messages, positions in batches:
                    prepared = transform_batch(messages, self.mapping, self.validator, self.options)
                    updates = offset_updates(self.expected, positions)
                    if inflight is not None:
                        job, inflight = inflight, None
                        flush(job)
                    future = pool.submit(self._write, messages, prepared, updates)
                    inflight = (future, updates, prepared)
                if inflight is not None:
                    job, inflight = inflight, None
                    flush(job)
            finally:
                if inflight is not None:
                    # Let the in-flight write end so the connection is idle before closing.
                    try:
                        inflight[0].result()
                    except Exception:
                        logger.debug("in-flight batch failed during shutdown", exc_info=True)
        return totals
