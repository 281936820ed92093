"""Label a corpus with Dask workers submitted as SLURM jobs (dask-jobqueue).

Usage (on a login node, with the project installed and ``pip install -e ".[slurm]"``):
    python pipelines/slurm.py --source casia --root /data/CASIA-WebFace --out /scratch/casia.zarr \\
        --jobs 20 --cores 8 --memory 16GB --walltime 04:00:00 --queue cpu

Each SLURM job runs ``--cores`` single-threaded worker processes. Re-run the same
command to resume. Corpus and store must be on a filesystem every node sees.
"""
from __future__ import annotations

import argparse

from distributed import Client

from labelgen.chain import ChainConfig
from labelgen.run import Job, prepare_store, run_job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True)
    parser.add_argument("--root", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--teacher", default="classical")
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--jobs", type=int, default=10, help="SLURM jobs to submit")
    parser.add_argument("--cores", type=int, default=8, help="cores (= worker processes) per job")
    parser.add_argument("--memory", default="16GB", help="memory per job")
    parser.add_argument("--walltime", default="04:00:00")
    parser.add_argument("--queue", default=None, help="SLURM partition")
    parser.add_argument("--account", default=None)
    args = parser.parse_args()

    from dask_jobqueue import SLURMCluster

    job = Job(args.source, args.root, {}, ChainConfig(teacher=args.teacher), args.shard_size)
    store = prepare_store(args.out, job)
    cluster = SLURMCluster(cores=args.cores, processes=args.cores, memory=args.memory, walltime=args.walltime,
                           queue=args.queue, account=args.account,
                           job_script_prologue=["export OMP_NUM_THREADS=1"])
    cluster.scale(jobs=args.jobs)
    try:
        summary = run_job(store, scheduler=cluster.scheduler_address)
    finally:
        cluster.close()
    print(summary)


if __name__ == "__main__":
    main()
