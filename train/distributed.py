"""Where a training process runs: its device, and its place in a (possibly single-process) DDP job.

``svc-train`` runs in one process, or in each process ``torchrun`` starts: then
:func:`init_distributed` joins the process group from the environment (NCCL on
CUDA, gloo on CPU). The collective helpers below are what the trainer needs of
``torch.distributed``; each one is a no-op in a single process, and in a job
every rank must call it at the same point.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` picks CUDA (this process's local GPU), then Apple MPS, then the CPU."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_preference: str = "auto") -> DistEnv:
    """Joins the torchrun process group when ``WORLD_SIZE`` > 1 (env:// rendezvous).

    NCCL needs GPUs; gloo also runs on CPU, which is how the DDP path is tested.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistEnv()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = device_preference.startswith("cuda") or (device_preference == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return DistEnv(rank, world_size, local_rank)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The mixed-precision type: float16 on GPUs (with a GradScaler), bfloat16 on CPUs.

    bfloat16 keeps float32's exponent range, so it needs no loss scaling; CPUs
    with AMX or AVX-512 BF16 run FaceOccNet's training step about twice as fast
    in it (``benchmarks/train.py``).
    """
    return torch.bfloat16 if device.type == "cpu" else torch.float16



def distributed_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def gather_objects(value: object, env: DistEnv) -> list:
    """``value`` of every rank, in rank order (picklable objects)."""
    if not env.distributed:
        return [value]
    values: list = [None] * env.world_size
    dist.all_gather_object(values, value)
    return values


def reduce_mean(value: float, env: DistEnv, device: torch.device) -> float:
    """The mean of ``value`` over the ranks."""
    if not env.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / env.world_size


def any_rank(flag: bool, env: DistEnv, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank."""
    if not env.distributed:
        return flag
    tensor = torch.tensor([float(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def sum_over_ranks(array: np.ndarray, env: DistEnv, device: torch.device) -> np.ndarray:
    """The element-wise sum of ``array`` over the ranks."""
    if not env.distributed:
        return array
    tensor = torch.from_numpy(array).to(device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()
