"""Linear-chain conditional random field (CRF) for sequence tagging.

Self-contained: depends on torch only, so it can be used (and tested) without the
rest of the engine. All tensors are batch-first:

* ``emissions``: ``(batch, seq_len, num_tags)`` float, unnormalised tag scores;
* ``tags``: ``(batch, seq_len)`` long, gold tag indices;
* ``mask``: ``(batch, seq_len)`` bool (integer 0/1 is accepted too), ``True`` on real
  tokens. Masks must be *left-aligned*: every sequence starts at position 0 and its
  real tokens are contiguous (``mask[:, 0]`` all ``True``, then ones followed by zeros).

The scoring follows kmkurn/pytorch-crf: a tag sequence ``y`` of length ``L`` scores::

    start[y_0] + sum_t emissions[t, y_t] + sum_{t>0} transitions[y_{t-1}, y_t] + end[y_{L-1}]

Optional boolean constraint masks forbid transitions, first tags or last tags
(e.g. ``O -> I-PER`` in BIO; see :func:`allowed_transitions`). They are enforced in
training *and* decoding: the log-likelihood gives forbidden moves a large finite
penalty (:attr:`CRF.DISALLOWED_SCORE`, so gradients stay finite), and Viterbi
decoding excludes them outright.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CRF", "PAD_TAG", "allowed_transitions"]

#: Value :meth:`CRF.decode` writes at padded positions (where ``mask`` is off).
PAD_TAG: int = -1

_REDUCTIONS = ("none", "sum", "mean", "token_mean")


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags (batch-first).

    Args:
        num_tags: number of tags.
        allowed: optional bool tensor ``(num_tags, num_tags)``; ``allowed[i, j]`` says
            whether the transition from tag ``i`` to tag ``j`` is permitted.
        allowed_start: optional bool tensor ``(num_tags,)``; ``allowed_start[j]`` says
            whether a sequence may start with tag ``j``.
        allowed_end: optional bool tensor ``(num_tags,)``; ``allowed_end[i]`` says
            whether a sequence may end with tag ``i``.

    Attributes:
        start_transitions: ``(num_tags,)`` score of starting with each tag.
        end_transitions: ``(num_tags,)`` score of ending with each tag.
        transitions: ``(num_tags, num_tags)``; ``transitions[i, j]`` is the score of
            moving from tag ``i`` to tag ``j``.
    """

    #: Score given to forbidden moves in :meth:`log_likelihood`. Finite (not ``-inf``)
    #: so that gradients and ``logsumexp`` stay finite even when a gold path or a
    #: whole row of the lattice is forbidden; ``exp(-1e4)`` is exactly 0 in float32
    #: and float64, so allowed paths keep all of the probability mass.
    DISALLOWED_SCORE: float = -1e4

    allowed: torch.Tensor | None
    allowed_start: torch.Tensor | None
    allowed_end: torch.Tensor | None

    def __init__(
        self,
        num_tags: int,
        allowed: torch.Tensor | None = None,
        allowed_start: torch.Tensor | None = None,
        allowed_end: torch.Tensor | None = None,
    ) -> None:
        if not isinstance(num_tags, int) or isinstance(num_tags, bool) or num_tags <= 0:
            raise ValueError(f"num_tags must be a positive int, got {num_tags!r}")
        super().__init__()
        self.num_tags = num_tags
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.register_buffer(
            "allowed", _check_constraint("allowed", allowed, (num_tags, num_tags))
        )
        self.register_buffer(
            "allowed_start", _check_constraint("allowed_start", allowed_start, (num_tags,))
        )
        self.register_buffer(
            "allowed_end", _check_constraint("allowed_end", allowed_end, (num_tags,))
        )
        self.reset_parameters()

    @classmethod
    def from_tags(cls, tags: Sequence[str]) -> CRF:
        """Build a CRF over ``tags`` constrained by their BIO/BIOES scheme.

        See :func:`allowed_transitions` for the scheme rules.
        """
        allowed, allowed_start, allowed_end = allowed_transitions(tags)
        return cls(len(tags), allowed, allowed_start, allowed_end)

    def reset_parameters(self) -> None:
        """Initialise all scores uniformly in ``(-0.1, 0.1)``."""
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def extra_repr(self) -> str:
        constrained = any(
            c is not None for c in (self.allowed, self.allowed_start, self.allowed_end)
        )
        return f"num_tags={self.num_tags}, constrained={constrained}"

    # ------------------------------------------------------------------ training

    def forward(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor | None = None,
        reduction: str = "none",
    ) -> torch.Tensor:
        """Same as :meth:`log_likelihood` (so ``crf(emissions, tags, mask)`` works)."""
        return self.log_likelihood(emissions, tags, mask, reduction)

    def log_likelihood(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor | None = None,
        reduction: str = "none",
    ) -> torch.Tensor:
        """Conditional log-likelihood ``log p(tags | emissions)`` of the gold tags.

        Args:
            emissions: ``(batch, seq_len, num_tags)`` float.
            tags: ``(batch, seq_len)`` long; values at padded positions are ignored
                (any value, e.g. ``-100``, is fine there).
            mask: ``(batch, seq_len)`` bool, left-aligned; ``None`` means all tokens.
            reduction: ``"none"`` -> ``(batch,)``; ``"sum"`` / ``"mean"`` over the
                batch; ``"token_mean"`` -> sum divided by the number of real tokens.

        Returns:
            ``(batch,)`` for ``reduction="none"``, else a scalar. Negate it for a loss.
        """
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        mask = self._validate(emissions, mask, tags)
        batch_size = emissions.size(0)
        if batch_size == 0:
            # shape: (0,)
            llh = emissions.sum(dim=(1, 2))
            return llh if reduction == "none" else _reduce(llh, mask, reduction)

        # shape: (batch,)
        lengths = mask.sum(dim=1)
        # Steps past the longest sequence are all padding; skipping them is free speed.
        max_len = int(lengths.max())
        # shape: (batch, max_len, num_tags)
        emissions = emissions[:, :max_len]
        # shape: (batch, max_len)
        mask = mask[:, :max_len]
        # Zeroing padded emissions/tags keeps arbitrary padding values (NaN, -100, ...)
        # out of both the scores and their gradients.
        # shape: (batch, max_len, num_tags)
        emissions = emissions.masked_fill(~mask.unsqueeze(2), 0.0)
        # shape: (batch, max_len)
        tags = tags[:, :max_len].masked_fill(~mask, 0)
        # shape: (num_tags,), (num_tags, num_tags), (num_tags,)
        start, trans, end = self._scores(self.DISALLOWED_SCORE)
        # shape: (batch, 1)
        last = (lengths - 1).unsqueeze(1)

        # shape: (batch,)
        numerator = self._path_score(emissions, tags, mask, last, start, trans, end)
        # shape: (batch,)
        denominator = self._log_partition(emissions, last, start, trans, end)
        # shape: (batch,)
        llh = numerator - denominator
        return _reduce(llh, mask, reduction)

    @staticmethod
    def _path_score(
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor,
        last: torch.Tensor,
        start: torch.Tensor,
        trans: torch.Tensor,
        end: torch.Tensor,
    ) -> torch.Tensor:
        """Score of ``tags``; emissions are already zero at padded positions.

        ``emissions (batch, seq_len, num_tags)``, ``tags``/``mask (batch, seq_len)``,
        ``last (batch, 1)`` index of each sequence's last token -> ``(batch,)``.
        """
        # shape: (batch, seq_len)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        # shape: (batch, seq_len - 1)
        moved = trans[tags[:, :-1], tags[:, 1:]].masked_fill(~mask[:, 1:], 0.0)
        # shape: (batch,)
        last_tags = tags.gather(1, last).squeeze(1)
        # shape: (batch,)
        return start[tags[:, 0]] + emitted.sum(dim=1) + moved.sum(dim=1) + end[last_tags]

    @staticmethod
    def _log_partition(
        emissions: torch.Tensor,
        last: torch.Tensor,
        start: torch.Tensor,
        trans: torch.Tensor,
        end: torch.Tensor,
    ) -> torch.Tensor:
        """Forward algorithm: ``log Z`` per sequence, ``(batch,)``.

        Runs every sequence to the full ``seq_len`` and then picks each one's forward
        variables at its own last token, which replaces a per-step ``torch.where``.
        """
        batch_size, _, num_tags = emissions.shape
        steps = emissions.unbind(1)
        # shape: (batch, num_tags)
        alpha = start + steps[0]
        alphas = [alpha]
        for emission in steps[1:]:
            # shape: (batch, num_tags, num_tags) -> (batch, num_tags)
            alpha = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emission
            alphas.append(alpha)
        # shape: (batch, seq_len, num_tags)
        stacked = torch.stack(alphas, dim=1)
        # shape: (batch, num_tags)
        final = stacked.gather(1, last.unsqueeze(2).expand(batch_size, 1, num_tags)).squeeze(1)
        # shape: (batch,)
        return torch.logsumexp(final + end, dim=1)

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Best tag sequence per batch element (Viterbi), fully vectorised.

        Args:
            emissions: ``(batch, seq_len, num_tags)`` float.
            mask: ``(batch, seq_len)`` bool, left-aligned; ``None`` means all tokens.

        Returns:
            ``(batch, seq_len)`` long on ``emissions.device``; positions where ``mask``
            is off hold :data:`PAD_TAG` (``-1``). Constrained transitions are never
            emitted as long as at least one permitted path exists.
        """
        mask = self._validate(emissions, mask)
        batch_size, seq_len, num_tags = emissions.shape
        # shape: (batch, seq_len)
        paths = torch.full(
            (batch_size, seq_len), PAD_TAG, dtype=torch.long, device=emissions.device
        )
        if batch_size == 0:
            return paths

        # shape: (batch,)
        lengths = mask.sum(dim=1)
        max_len = int(lengths.max())
        # shape: (batch, max_len, num_tags)
        emissions = emissions[:, :max_len]
        # shape: (batch, max_len)
        mask = mask[:, :max_len]
        # Decoding needs no gradients, so forbidden moves can be excluded exactly.
        # shape: (num_tags,), (num_tags, num_tags), (num_tags,)
        start, trans, end = self._scores(float("-inf"))
        steps = emissions.unbind(1)

        # shape: (batch, num_tags)
        score = start + steps[0]
        scores = [score]
        # history[t][b, j]: best tag at t given tag j at t + 1.
        history: list[torch.Tensor] = []
        for emission in steps[1:]:
            # shape: (batch, num_tags, num_tags) -> (batch, num_tags) twice
            best, argbest = (score.unsqueeze(2) + trans).max(dim=1)
            # shape: (batch, num_tags)
            score = best + emission
            scores.append(score)
            history.append(argbest)

        # shape: (batch, 1)
        last = (lengths - 1).unsqueeze(1)
        # shape: (batch, num_tags)
        final = torch.stack(scores, dim=1).gather(
            1, last.unsqueeze(2).expand(batch_size, 1, num_tags)
        ).squeeze(1) + end
        # shape: (batch, 1)
        tag = final.argmax(dim=1, keepdim=True)

        if history:
            # Steps beyond a sequence's end become identity back-pointers, so walking
            # back from position max_len - 1 carries the best last tag unchanged down
            # to the sequence's real last token: no per-step masking in the backtrace.
            # shape: (batch, max_len - 1, num_tags)
            back = torch.where(
                mask[:, 1:].unsqueeze(2),
                torch.stack(history, dim=1),
                torch.arange(num_tags, device=emissions.device),
            )
            reversed_path = [tag]
            for pointers in reversed(back.unbind(1)):
                # shape: (batch, 1)
                tag = pointers.gather(1, tag)
                reversed_path.append(tag)
            reversed_path.reverse()
            # shape: (batch, max_len)
            best_path = torch.cat(reversed_path, dim=1)
        else:
            best_path = tag
        paths[:, :max_len] = best_path.masked_fill(~mask, PAD_TAG)
        return paths

    def decode_list(
        self, emissions: torch.Tensor, mask: torch.Tensor | None = None
    ) -> list[list[int]]:
        """:meth:`decode` as Python lists, each trimmed to its sequence length.

        Args:
            emissions: ``(batch, seq_len, num_tags)`` float.
            mask: ``(batch, seq_len)`` bool, left-aligned; ``None`` means all tokens.

        Returns:
            ``batch`` lists of tag indices (same format as pytorch-crf's ``decode``).
        """
        paths = self.decode(emissions, mask)
        lengths = (paths != PAD_TAG).sum(dim=1).tolist()
        return [row[:n] for row, n in zip(paths.tolist(), lengths)]

    # ------------------------------------------------------------------ helpers

    def _scores(self, disallowed: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Start ``(num_tags,)``, transition ``(num_tags, num_tags)`` and end
        ``(num_tags,)`` scores with the constraints applied (once per call)."""
        start: torch.Tensor = self.start_transitions
        trans: torch.Tensor = self.transitions
        end: torch.Tensor = self.end_transitions
        if self.allowed_start is not None:
            start = start.masked_fill(~self.allowed_start, disallowed)
        if self.allowed is not None:
            trans = trans.masked_fill(~self.allowed, disallowed)
        if self.allowed_end is not None:
            end = end.masked_fill(~self.allowed_end, disallowed)
        return start, trans, end

    def _validate(
        self,
        emissions: torch.Tensor,
        mask: torch.Tensor | None,
        tags: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Check inputs and return the mask as ``(batch, seq_len)`` bool."""
        if not isinstance(emissions, torch.Tensor) or emissions.dim() != 3:
            got = (
                f"{emissions.dim()}-d tensor"
                if isinstance(emissions, torch.Tensor)
                else type(emissions).__name__
            )
            raise ValueError(
                f"emissions must be a 3-d tensor (batch, seq_len, num_tags), got {got}"
            )
        if not emissions.is_floating_point():
            raise ValueError(f"emissions must be floating point, got {emissions.dtype}")
        batch_size, seq_len, num_tags = emissions.shape
        if num_tags != self.num_tags:
            raise ValueError(
                f"emissions must have num_tags={self.num_tags} in the last dimension, "
                f"got {num_tags}"
            )
        if seq_len == 0:
            raise ValueError("emissions must have seq_len >= 1, got 0")

        if tags is not None:
            if tags.shape != (batch_size, seq_len):
                raise ValueError(
                    f"tags must have shape {(batch_size, seq_len)} like emissions[..., 0], "
                    f"got {tuple(tags.shape)}"
                )
            if tags.dtype != torch.long:
                raise ValueError(f"tags must be torch.long, got {tags.dtype}")

        if mask is None:
            mask = torch.ones(batch_size, seq_len, dtype=torch.bool, device=emissions.device)
        else:
            if mask.shape != (batch_size, seq_len):
                raise ValueError(
                    f"mask must have shape {(batch_size, seq_len)} like emissions[..., 0], "
                    f"got {tuple(mask.shape)}"
                )
            if mask.is_floating_point() or mask.is_complex():
                raise ValueError(f"mask must be bool (or 0/1 integers), got {mask.dtype}")
            if mask.dtype != torch.bool:
                mask = mask != 0
            if batch_size > 0 and not bool(mask[:, 0].all()):
                raise ValueError(
                    "mask must be on at the first position of every sequence, "
                    "got a sequence starting with padding"
                )
            # A 0 followed by a 1 means a gap or right-aligned padding.
            if seq_len > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
                raise ValueError(
                    "mask must be left-aligned (ones then zeros in every row), "
                    "got a row with a 0 followed by a 1"
                )

        if tags is not None:
            real = tags[mask]
            if real.numel() and bool(((real < 0) | (real >= self.num_tags)).any()):
                raise ValueError(
                    f"tags must lie in [0, {self.num_tags}) wherever mask is on, "
                    f"got values in [{int(real.min())}, {int(real.max())}]"
                )
        return mask


def _reduce(llh: torch.Tensor, mask: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` to per-sequence ``llh (batch,)``; ``mask (batch, seq_len)``."""
    if reduction == "none":
        return llh
    if reduction == "sum":
        return llh.sum()
    if reduction == "mean":
        return llh.mean()
    return llh.sum() / mask.sum()


def _check_constraint(
    name: str, value: torch.Tensor | None, shape: tuple[int, ...]
) -> torch.Tensor | None:
    if value is None:
        return None
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"{name} must be a bool tensor of shape {shape}, got {type(value).__name__}"
        )
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    if value.dtype != torch.bool:
        raise ValueError(f"{name} must be torch.bool, got {value.dtype}")
    return value.clone()


def allowed_transitions(
    tags: Sequence[str],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Constraint masks for a BIO or BIOES tag set, for :class:`CRF`.

    The scheme is BIOES if any tag starts with ``"S-"`` or ``"E-"``, else BIO. Every
    tag must be ``"O"`` or ``"<prefix>-<type>"`` with a prefix of that scheme.

    * BIO: ``I-X`` may only follow ``B-X`` or ``I-X`` and may not start a sequence;
      everything else is allowed.
    * BIOES: ``B-X`` and ``I-X`` go to ``I-X`` or ``E-X``; ``E-X``, ``S-X`` and ``O``
      go to any ``B-*``, ``S-*`` or ``O``; sequences start with ``B``/``S``/``O`` and
      end with ``E``/``S``/``O``.

    Args:
        tags: tag names, index ``i`` naming tag ``i``.

    Returns:
        ``(allowed, allowed_start, allowed_end)`` bool tensors of shapes
        ``(num_tags, num_tags)``, ``(num_tags,)`` and ``(num_tags,)``.
    """
    tags = list(tags)
    if not tags:
        raise ValueError("tags must name at least one tag, got an empty list")
    bioes = any(t.startswith(("S-", "E-")) for t in tags)
    prefixes = "BIOES" if bioes else "BIO"

    parsed: list[tuple[str, str]] = []
    for tag in tags:
        if tag == "O":
            parsed.append(("O", ""))
            continue
        prefix, sep, kind = tag.partition("-")
        if not sep or not kind or len(prefix) != 1 or prefix not in prefixes or prefix == "O":
            scheme = "BIOES" if bioes else "BIO"
            raise ValueError(
                f"tags must be 'O' or '<P>-<type>' with P in {sorted(set(prefixes) - {'O'})} "
                f"for the {scheme} scheme, got {tag!r}"
            )
        parsed.append((prefix, kind))

    n = len(tags)
    allowed = torch.zeros(n, n, dtype=torch.bool)
    for i, (p_from, k_from) in enumerate(parsed):
        for j, (p_to, k_to) in enumerate(parsed):
            if bioes:
                ok = p_to in "IE" and k_to == k_from if p_from in "BI" else p_to in "BSO"
            else:
                ok = p_to != "I" or (p_from in "BI" and k_from == k_to)
            allowed[i, j] = ok

    starts = "BSO" if bioes else "BO"
    ends = "ESO" if bioes else "BIO"
    allowed_start = torch.tensor([p in starts for p, _ in parsed], dtype=torch.bool)
    allowed_end = torch.tensor([p in ends for p, _ in parsed], dtype=torch.bool)
    return allowed, allowed_start, allowed_end
