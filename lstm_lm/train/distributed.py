"""Several processes under torchrun: each rank trains on its own contiguous shard of the text, gradients are
averaged by DistributedDataParallel, evaluations are summed over ranks, and rank 0 alone writes the run directory.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and where to meet: MASTER_ADDR, MASTER_PORT). Without them the run
is one process and nothing here communicates.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the rank's index on its machine: which GPU it takes
    device: torch.device = torch.device("cpu")  # where collectives take their tensors (NCCL: the rank's GPU)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def join_world(device: torch.device) -> tuple[World, torch.device]:
    """The world torchrun started this process in (NCCL between GPUs, Gloo between CPUs), and the device of
    this rank: with CUDA, the GPU numbered by LOCAL_RANK."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    world = World(rank, size, local_rank, device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def shard(ids: torch.Tensor, world: World, equal: bool) -> torch.Tensor:
    """This rank's contiguous 1/size of a token stream, never interleaved: BPTT reads text in order.

    equal: every shard as long (the tail is dropped), so that ranks take the same number of training steps; rank
    r's batch columns are then columns r·B ... r·B + B - 1 of the stream batchified into size·B. Otherwise the
    shards cover every token, as evaluation needs.
    """
    if equal:
        length = ids.numel() // world.size
        return ids[world.rank * length: (world.rank + 1) * length]
    return ids[ids.numel() * world.rank // world.size: ids.numel() * (world.rank + 1) // world.size]


def max_over_ranks(values: torch.Tensor, world: World) -> torch.Tensor:
    """Elementwise maximum over all ranks (in place), so that every rank sees the same values."""
    if world.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def sum_over_ranks(values: torch.Tensor, world: World) -> torch.Tensor:
    if world.distributed:
        dist.all_reduce(values)
    return values


def gather(tensor: torch.Tensor, world: World) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped tensor, in rank order (on the CPU)."""
    if not world.distributed:
        return [tensor.cpu()]
    tensor = tensor.to(world.device).contiguous()
    copies = [torch.empty_like(tensor) for _ in range(world.size)]
    dist.all_gather(copies, tensor)
    return [copy.cpu() for copy in copies]


def barrier(world: World) -> None:
    """Wait until rank 0 has written what the other ranks are about to read."""
    if world.distributed:
        dist.barrier()


def leave_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def leave_without_teardown(code: int) -> None:
    """End a rank that has finished: its files are written and closed and the process group is gone, but Gloo's
    threads still abort the interpreter's teardown now and then ("terminate called without an active exception",
    SIGABRT: 1 run in 6 of tests/train/test_distributed.py's torchrun test), which torchrun reports as a failed rank."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
