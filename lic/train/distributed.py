"""Data-parallel training across the processes that torchrun starts (one per GPU, or gloo on CPU).

    torchrun --standalone --nproc_per_node=N -m lic.cli train ...

torchrun is the launcher and sets WORLD_SIZE, RANK and LOCAL_RANK; without them `join`
returns a one-process world and training runs as it always did. What the world guarantees:

- the global batch, learning rate and step count are the config's: each rank takes
  batch / world_size of the crops that one process would take (`CropSampler`'s `part`), and
  DistributedDataParallel averages the gradients, so N processes follow one process's
  trajectory up to float rounding;
- parameters and buffers start equal (DDP broadcasts rank 0's at wrap time and its buffers at
  every forward), and the auxiliary (quantile) gradients are averaged explicitly, since the
  quantiles sit outside the main loss that DDP reduces;
- decisions that end a loop (time budget) are taken together (`any`), so no rank waits alone
  in a collective.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from lic.errors import InputError
from lic.train.common import pick_device


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and exports."""
        return self.rank == 0

    @property
    def part(self) -> tuple[int, int]:
        return self.rank, self.size

    def check_batch(self, batch: int) -> None:
        if batch % self.size:
            raise InputError(f"--batch {batch} does not split evenly over {self.size} processes")

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP over the model when there are several processes. find_unused_parameters: the
        entropy bottleneck's quantiles get no gradient from the RD loss (only from aux_loss)."""
        if self.size == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true if it is true on any rank: one collective for all of them, so that
        decisions taken on each rank's own clock are the same everywhere."""
        if self.size == 1:
            return flags
        t = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in t.tolist())

    def barrier(self) -> None:
        """Waits until every rank is here (e.g. until rank 0 has written a file the others read)."""
        if self.size > 1:
            dist.barrier()

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over ranks (of equal-sized local batches: the global batch's value)."""
        if self.size == 1:
            return values
        t = values.detach().clone()
        dist.all_reduce(t)
        return t / self.size

    def average_grads(self, params: list[nn.Parameter]) -> None:
        if self.size == 1:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.size


def join(device_name: str) -> World:
    """This process's place in the world torchrun made (or a world of one without torchrun)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_name)
    if size == 1:
        return World(0, 1, device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank, size, device)


def leave(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
