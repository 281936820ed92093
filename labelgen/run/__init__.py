"""``labelgen run``: a corpus in, a sharded label store out, in parallel with Dask, resumable.

- :mod:`~labelgen.run.job`: what a run labels (:class:`Job`) and its store:
  :func:`prepare_store` scans the source once, fixes the manifest (a seeded
  shuffle) and creates the store, or reopens it to resume the same job.
- :mod:`~labelgen.run.distributor`: :func:`run_job` sends one task per pending
  shard to a Dask cluster (a local process cluster, or an existing
  scheduler's), or labels them in this process (``--serial``).
- :mod:`~labelgen.run.worker`: one shard task inside a worker: the models load
  once per worker thread and stay; the task labels its rows, writes them and
  then the shard's completion record.
- :mod:`~labelgen.run.progress`: the live progress bar.
- :mod:`~labelgen.run.signals`: SIGINT and SIGTERM stop a run cleanly; the same command resumes.

The stages know nothing about Dask; this package knows nothing about faces.

Example:
    >>> from labelgen.chain import ChainConfig
    >>> job = Job("sample", None, config=ChainConfig(teacher="hull"), shard_size=None)
    >>> job.sized(count=34, slots=2).shard_size  # every slot gets at least four shards
    5
"""
from labelgen.run.chain_start import ChainCannotStart
from labelgen.run.distributor import ClusterError, run_job
from labelgen.run.job import (Job, prepare_store, reset_damaged_shards, shards_of_part, stored_detector,
                              stored_setting, stored_settings)
from labelgen.run.signals import Interrupted, signals_stop_the_run

__all__ = ["ChainCannotStart", "ClusterError", "Interrupted", "Job", "prepare_store", "reset_damaged_shards", "run_job",
           "shards_of_part", "signals_stop_the_run", "stored_detector", "stored_setting", "stored_settings"]
