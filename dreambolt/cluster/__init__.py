"""One ingest spread over many processes: a Dask cluster, or any `concurrent.futures.Executor`.

The driver (`driver.distribute`, called by `Ingester.ingest` when the Ingester has an
`executor`) lists the sources and subtracts what the Delta table holds, as a single-process run
does, then cuts the rest into deterministic batches (`batches.cut`) and submits one task per
batch (`task.run_batch`). A task loads its batch with the same code as a single-process run,
in one Delta commit that carries the batch's app-transaction marker, so a retried or
duplicated task writes nothing twice. Only a Delta destination can be written from many
processes (`check.check_executor`).
"""

from dreambolt.cluster.batches import BATCH_BYTES, BATCH_FILES, cut
from dreambolt.cluster.task import BatchTask, run_batch

__all__ = ["BATCH_BYTES", "BATCH_FILES", "BatchTask", "cut", "run_batch"]
