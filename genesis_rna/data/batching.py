"""Token-budget batches: length-bucketed batches of at most a number of tokens, for pretraining (a sampler,
shuffled per epoch and per rank) and for inference (a plain list of batches)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler

from ..errors import ConfigError, InputError

# ---------------------------------------------------------------------------------------------------- sampler


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches for a token budget (or a fixed batch size), deterministic, resumable, DDP-aware.

    Per epoch: indices are shuffled with ``(seed, epoch)``, cut into buckets of ``bucket_size``, sorted by
    length inside each bucket, and grouped into batches whose padded size ``n * (min(L, max_len - 2) + 2)``
    stays within ``tokens_per_batch`` (a single longer item gets a batch of its own); with
    ``tokens_per_batch == 0`` batches hold ``batch_size`` items. The batch order is shuffled again. Without
    ``shuffle`` there is no shuffling at all: batches follow length order inside buckets of the original order
    (minimal padding for evaluation).

    With ``world_size > 1`` the epoch's batch list is padded by repeating its first batches up to a multiple
    of ``world_size`` (or truncated with ``drop_last``) and rank ``r`` takes batches ``r, r + world_size, ...``,
    so ranks get disjoint, equally many batches and never wait on each other at a collective.

    ``state_dict()`` records ``(epoch, batches yielded)``; after ``load_state_dict`` the next iteration of that
    epoch continues with exactly the next batch. When a DataLoader prefetches with workers, the sampler runs
    ahead of training, so checkpoint :class:`PretrainDataLoader`'s state instead (it counts consumed batches).
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        tokens_per_batch: int = 0,
        batch_size: int = 16,
        *,
        shuffle: bool = True,
        seed: int = 0,
        bucket_size: int = 4096,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        max_len: int | None = None,
        max_batch_size: int = 0,
    ) -> None:
        if tokens_per_batch < 0 or (tokens_per_batch == 0 and batch_size <= 0):
            raise ConfigError(f"need tokens_per_batch > 0 or batch_size > 0, got {tokens_per_batch}, {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if bucket_size <= 0:
            raise ConfigError(f"bucket_size must be positive, got {bucket_size}")
        lengths = np.asarray(lengths, dtype=np.int64)
        self.tokens = lengths + 2 if max_len is None else np.minimum(lengths + 2, int(max_len))
        self.tokens_per_batch, self.batch_size = int(tokens_per_batch), int(batch_size)
        self.shuffle, self.seed, self.bucket_size, self.drop_last = shuffle, int(seed), int(bucket_size), drop_last
        self.rank, self.world_size, self.max_batch_size = int(rank), int(world_size), int(max_batch_size)
        self.epoch = 0
        self._start = 0  # batches of self.epoch to skip on the next iteration (resume)
        self._yielded = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    # -- batch construction
    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def _all_batches(self) -> list[list[int]]:
        """Every batch of the current epoch, before the split across ranks."""
        n = len(self.tokens)
        rng = self._rng()
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        buckets = [order[i:i + self.bucket_size] for i in range(0, n, self.bucket_size)]
        ordered = [b[np.argsort(self.tokens[b], kind="stable")] for b in buckets]
        if self.tokens_per_batch:
            batches = [batch for b in ordered for batch in self._budget_batches(b)]
        else:
            flat = np.concatenate(ordered) if ordered else np.zeros(0, np.int64)
            batches = [flat[i:i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
        if self.shuffle:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        return batches

    def _budget_batches(self, idx: np.ndarray) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        width = 0
        for i, t in zip(idx.tolist(), self.tokens[idx].tolist(), strict=True):
            new_width = max(width, t)
            full = self.max_batch_size and len(current) >= self.max_batch_size
            if current and (new_width * (len(current) + 1) > self.tokens_per_batch or full):
                batches.append(current)
                current, new_width = [], t
            current.append(i)
            width = new_width
        if current:
            batches.append(current)
        return batches

    def rank_batches(self) -> list[list[int]]:
        """This rank's batches of the current epoch (cached per epoch)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        batches = self._all_batches()
        w = self.world_size
        if w > 1 and len(batches) % w:
            if self.drop_last or len(batches) < 1:
                batches = batches[: len(batches) // w * w]
            else:
                extra = w - len(batches) % w
                batches = batches + [batches[k % len(batches)] for k in range(extra)]
        mine = batches[self.rank::w]
        self._cache = (self.epoch, mine)
        return mine

    # -- iteration, epochs, resume
    def __len__(self) -> int:
        return len(self.rank_batches())

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.rank_batches()
        start, self._start = self._start, 0
        self._yielded = start
        for batch in batches[start:]:
            self._yielded += 1
            yield list(batch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; changing it clears a pending resume offset (which belongs to the loaded epoch)."""
        if int(epoch) != self.epoch:
            self._start = 0
            self._yielded = 0
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_yielded": self._yielded, "seed": self.seed,
                "n_items": int(len(self.tokens)), "world_size": self.world_size}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Resume: the next iteration of ``state["epoch"]`` starts after ``state["batches_yielded"]`` batches."""
        for key in ("seed", "n_items", "world_size"):
            mine = {"seed": self.seed, "n_items": len(self.tokens), "world_size": self.world_size}[key]
            if key in state and int(state[key]) != int(mine):
                raise ConfigError(f"sampler state was saved with {key}={state[key]}, this sampler has {mine}; "
                                  "resuming would not reproduce the batches")
        self.epoch = int(state["epoch"])
        self._start = self._yielded = int(state["batches_yielded"])


def token_budget_batches(lengths: Sequence[int], tokens_per_batch: int, *, max_batch_size: int = 0) -> list[list[int]]:
    """Group item indices into batches whose padded size ``n * max_len`` stays within ``tokens_per_batch``.

    Items are sorted by length first so each batch holds similar lengths and padding waste stays small; an item
    longer than the budget gets a batch of its own (never dropped).
    """
    if tokens_per_batch <= 0:
        raise InputError(f"tokens per batch must be positive, got {tokens_per_batch}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        new_width = max(width, lengths[i])
        too_many = max_batch_size and len(current) >= max_batch_size
        if current and (new_width * (len(current) + 1) > tokens_per_batch or too_many):
            batches.append(current)
            current, new_width = [], lengths[i]
        current.append(i)
        width = new_width
    if current:
        batches.append(current)
    return batches
