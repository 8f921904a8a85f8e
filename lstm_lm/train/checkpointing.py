"""What a training checkpoint holds beyond weights and optimizer: every rank's hidden state and random streams,
gathered to rank 0 when saving, and this rank's share found again when resuming, whatever number of ranks wrote
it."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError
from ..model.language_model import Hidden
from .distributed import World, gather


def rank_states(hidden: Hidden, world: World, device: torch.device) -> list[dict[str, Any]]:
    """One entry per rank: its hidden state, its CPU generator and, on CUDA, its own GPU's generator (dropout on
    CUDA draws from it). Each rank reads its own shard of the text, so all of them are kept."""
    states = [gather(state.detach(), world) for state in hidden]  # [state][rank]
    rngs = gather(torch.get_rng_state(), world)
    cuda_rngs = (gather(torch.cuda.get_rng_state(device), world) if device.type == "cuda" else [None] * world.size)
    return [{"hidden": [state[rank] for state in states], "rng": rngs[rank], "cuda_rng": cuda_rngs[rank]}
            for rank in range(world.size)]


def restore_rank_state(saved: dict[str, Any], world: World, device: torch.device, batch_size: int,
                       where: str) -> Hidden:
    """Set this rank's random streams from a checkpoint and return its columns of the saved hidden state."""
    try:
        ranks = saved.get("rank_states") or [saved]  # checkpoints written before distributed runs: one rank
        own = ranks[world.rank % len(ranks)]  # with fewer ranks than wrote it, some streams end here
        torch.set_rng_state(own["rng"])
        if own.get("cuda_rng") is not None and device.type == "cuda":  # absent from a CPU run
            torch.cuda.set_rng_state(own["cuda_rng"], device)
        # Each part (layers, columns of all ranks, H): rank r's columns follow rank r - 1's in the text, so this
        # rank's columns are the same slice whatever number of ranks wrote them (see distributed.shard).
        columns = [torch.cat(states, dim=1) for states in zip(*(rank["hidden"] for rank in ranks))]
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise UserError(f"{where}: not a checkpoint this version can resume ({error})") from None
    return tuple(state[:, world.rank * batch_size:(world.rank + 1) * batch_size].to(device) for state in columns)
