"""Tests for the built-in linear-chain CRF (plugins/engine_builtins/tagging/crf.py)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch.func import functional_call

_CRF_PATH = Path(__file__).resolve().parents[3] / "plugins/engine_builtins/tagging/crf.py"


def _load_crf_module() -> ModuleType:
    # The module is torch-only by design, so load it straight from its file: the test
    # then does not depend on how the plugin packages are installed.
    spec = importlib.util.spec_from_file_location("_engine_builtin_crf_under_test", _CRF_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


crf_module = _load_crf_module()
CRF = crf_module.CRF
PAD_TAG: int = crf_module.PAD_TAG
allowed_transitions = crf_module.allowed_transitions

LENGTHS = [4, 1, 3]  # batch of 3, mixed lengths, padded to 4


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mask(lengths: list[int], seq_len: int | None = None) -> torch.Tensor:
    seq_len = seq_len or max(lengths)
    return torch.arange(seq_len).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


def _random_crf(
    num_tags: int,
    seed: int,
    constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.nn.Module:
    crf = CRF(num_tags, *(constraints or (None, None, None))).to(dtype)
    g = _gen(seed)
    with torch.no_grad():
        # Larger than the default init so that paths are clearly separated.
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
    return crf


def _constraints(num_tags: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A hand-made constraint set touching transitions, starts and ends."""
    allowed = torch.ones(num_tags, num_tags, dtype=torch.bool)
    allowed[0, 1] = False
    allowed[2, 2] = False
    allowed[1, 0] = False
    start = torch.ones(num_tags, dtype=torch.bool)
    start[1] = False
    end = torch.ones(num_tags, dtype=torch.bool)
    end[0] = False
    return allowed, start, end


def _path_ok(path: tuple[int, ...], constraints) -> bool:
    if constraints is None:
        return True
    allowed, start, end = constraints
    return (
        bool(start[path[0]])
        and bool(end[path[-1]])
        and all(bool(allowed[a, b]) for a, b in itertools.pairwise(path))
    )


def _raw_score(crf, emissions: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
    """Unconstrained score of ``path`` for one sequence, ``emissions (len, num_tags)``."""
    score = crf.start_transitions[path[0]] + crf.end_transitions[path[-1]]
    for t, tag in enumerate(path):
        score = score + emissions[t, tag]
    for a, b in itertools.pairwise(path):
        score = score + crf.transitions[a, b]
    return score


def _brute_force(crf, emissions: torch.Tensor, length: int, constraints=None):
    """(log Z over allowed paths, {path: raw score}) for one sequence by enumeration."""
    paths = [
        p
        for p in itertools.product(range(crf.num_tags), repeat=length)
        if _path_ok(p, constraints)
    ]
    scores = {p: _raw_score(crf, emissions, p) for p in paths}
    log_z = torch.logsumexp(torch.stack(list(scores.values())), dim=0)
    return log_z, scores


@pytest.mark.parametrize("num_tags", [3, 4])
@pytest.mark.parametrize("constrained", [False, True])
def test_log_likelihood_matches_brute_force(num_tags: int, constrained: bool) -> None:
    constraints = _constraints(num_tags) if constrained else None
    crf = _random_crf(num_tags, seed=num_tags, constraints=constraints)
    mask = _mask(LENGTHS)
    g = _gen(100 + num_tags)
    emissions = torch.randn(len(LENGTHS), mask.size(1), num_tags, generator=g, dtype=torch.float64)

    with torch.no_grad():
        for b, length in enumerate(LENGTHS):
            log_z, scores = _brute_force(crf, emissions[b], length, constraints)
            total = torch.zeros((), dtype=torch.float64)
            for path, score in scores.items():
                # Padded gold tags are ignored, whatever their value.
                tags = torch.full((len(LENGTHS), mask.size(1)), -100, dtype=torch.long)
                tags[:, :length] = torch.tensor(path)
                tags[~mask] = -100
                for other, n in enumerate(LENGTHS):
                    if other != b:
                        tags[other, :n] = 0
                llh = crf.log_likelihood(emissions, tags, mask)[b]
                torch.testing.assert_close(llh, score - log_z, rtol=0, atol=1e-10)
                total = total + llh.exp()
            # The allowed paths carry all the probability mass.
            torch.testing.assert_close(total, torch.ones((), dtype=torch.float64))


def test_log_likelihood_reductions_and_forward() -> None:
    crf = _random_crf(4, seed=0)
    mask = _mask(LENGTHS)
    g = _gen(1)
    emissions = torch.randn(3, 4, 4, generator=g, dtype=torch.float64)
    tags = torch.randint(0, 4, (3, 4), generator=g)
    per_seq = crf.log_likelihood(emissions, tags, mask)
    assert per_seq.shape == (3,)
    torch.testing.assert_close(crf(emissions, tags, mask), per_seq)
    torch.testing.assert_close(crf(emissions, tags, mask, reduction="sum"), per_seq.sum())
    torch.testing.assert_close(crf(emissions, tags, mask, reduction="mean"), per_seq.mean())
    torch.testing.assert_close(
        crf(emissions, tags, mask, reduction="token_mean"), per_seq.sum() / sum(LENGTHS)
    )
    # No mask means every token is real.
    full = torch.ones(3, 4, dtype=torch.bool)
    torch.testing.assert_close(crf(emissions, tags), crf(emissions, tags, full))
    # Integer 0/1 masks are accepted.
    torch.testing.assert_close(crf(emissions, tags, mask.long()), per_seq)


def test_log_likelihood_ignores_padding_values() -> None:
    crf = _random_crf(3, seed=2)
    mask = _mask(LENGTHS)
    g = _gen(3)
    emissions = torch.randn(3, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    tags = torch.randint(0, 3, (3, 4), generator=g)
    reference = crf(emissions, tags, mask)

    noisy = emissions.detach().clone().masked_fill(~mask.unsqueeze(2), float("nan"))
    noisy.requires_grad_(True)
    llh = crf(noisy, tags.masked_fill(~mask, -100), mask)
    torch.testing.assert_close(llh, reference)
    llh.sum().backward()
    assert torch.isfinite(noisy.grad).all()
    assert (noisy.grad[~mask] == 0).all()


@pytest.mark.parametrize("num_tags", [3, 4])
@pytest.mark.parametrize("constrained", [False, True])
def test_viterbi_matches_brute_force(num_tags: int, constrained: bool) -> None:
    constraints = _constraints(num_tags) if constrained else None
    crf = _random_crf(num_tags, seed=10 + num_tags, constraints=constraints)
    lengths = [4, 1, 3, 2, 4, 1]
    mask = _mask(lengths)
    g = _gen(20 + num_tags)
    # Large emissions push unconstrained argmaxes through forbidden moves, which the
    # constrained decoder must still avoid.
    emissions = 3 * torch.randn(len(lengths), 4, num_tags, generator=g, dtype=torch.float64)

    decoded = crf.decode(emissions, mask)
    assert decoded.shape == (len(lengths), 4) and decoded.dtype == torch.long
    assert (decoded[~mask] == PAD_TAG).all()
    as_lists = crf.decode_list(emissions, mask)
    for b, length in enumerate(lengths):
        _, scores = _brute_force(crf, emissions[b], length, constraints)
        expected = max(scores, key=lambda p: scores[p].item())
        assert tuple(decoded[b, :length].tolist()) == expected
        assert tuple(as_lists[b]) == expected
        assert _path_ok(expected, constraints)


def test_decode_never_emits_forbidden_bio_transitions() -> None:
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    crf = CRF.from_tags(tags)
    g = _gen(5)
    with torch.no_grad():
        # Make I-* attractive everywhere so that an unconstrained decoder would use them.
        crf.transitions.normal_(generator=g)
    lengths = [20, 7, 1, 13]
    emissions = torch.randn(4, 20, len(tags), generator=g) * 5
    emissions[..., [2, 4]] += 4.0
    allowed, allowed_start, allowed_end = allowed_transitions(tags)
    for path in crf.decode_list(emissions, _mask(lengths)):
        assert _path_ok(tuple(path), (allowed, allowed_start, allowed_end))

    unconstrained = CRF(len(tags))
    unconstrained.load_state_dict(crf.state_dict(), strict=False)
    bad = [
        p
        for p in unconstrained.decode_list(emissions, _mask(lengths))
        if not _path_ok(tuple(p), (allowed, allowed_start, allowed_end))
    ]
    assert bad, "test inputs should tempt an unconstrained decoder into forbidden moves"


def test_decode_single_step_and_full_mask() -> None:
    crf = _random_crf(3, seed=4)
    emissions = torch.randn(2, 1, 3, generator=_gen(6), dtype=torch.float64)
    expected = (crf.start_transitions + emissions[:, 0] + crf.end_transitions).argmax(1)
    assert crf.decode(emissions).squeeze(1).tolist() == expected.tolist()


def test_matches_pytorch_crf() -> None:
    torchcrf = pytest.importorskip("torchcrf")
    num_tags, batch, seq_len = 5, 8, 12
    ours = CRF(num_tags)
    ref = torchcrf.CRF(num_tags, batch_first=True)
    g = _gen(7)
    with torch.no_grad():
        for name in ("start_transitions", "end_transitions", "transitions"):
            value = torch.randn(getattr(ours, name).shape, generator=g)
            getattr(ours, name).copy_(value)
            getattr(ref, name).copy_(value)
    lengths = torch.randint(1, seq_len + 1, (batch,), generator=g).tolist()
    lengths[0] = seq_len
    mask = _mask(lengths, seq_len)
    emissions = torch.randn(batch, seq_len, num_tags, generator=g)
    tags = torch.randint(0, num_tags, (batch, seq_len), generator=g)

    torch.testing.assert_close(
        ours(emissions, tags, mask), ref(emissions, tags, mask, reduction="none")
    )
    for reduction in ("sum", "mean", "token_mean"):
        torch.testing.assert_close(
            ours(emissions, tags, mask, reduction=reduction),
            ref(emissions, tags, mask, reduction=reduction),
        )
    assert ours.decode_list(emissions, mask) == ref.decode(emissions, mask)


@pytest.mark.parametrize("constrained", [False, True])
def test_gradcheck(constrained: bool) -> None:
    num_tags = 3
    crf = _random_crf(num_tags, seed=8, constraints=_constraints(num_tags) if constrained else None)
    mask = _mask(LENGTHS)
    g = _gen(9)
    emissions = torch.randn(3, 4, num_tags, generator=g, dtype=torch.float64, requires_grad=True)
    transitions = crf.transitions.detach().clone().requires_grad_(True)
    tags = torch.randint(0, num_tags, (3, 4), generator=g)

    def llh(em: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        return functional_call(crf, {"transitions": trans}, (em, tags, mask))

    assert torch.autograd.gradcheck(llh, (emissions, transitions))


def test_backward_reaches_all_parameters() -> None:
    crf = CRF.from_tags(["O", "B-X", "I-X"])
    emissions = torch.randn(2, 5, 3, generator=_gen(11), requires_grad=True)
    tags = torch.tensor([[0, 1, 2, 2, 0], [2, 0, 0, 0, 0]])  # second gold path is forbidden
    loss = -crf(emissions, tags, _mask([5, 3]), reduction="token_mean")
    assert torch.isfinite(loss)
    loss.backward()
    for p in (emissions, *crf.parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all()


# ---------------------------------------------------------------- validation


def test_rejects_bad_inputs() -> None:
    crf = CRF(4)
    emissions = torch.randn(2, 3, 4)
    tags = torch.zeros(2, 3, dtype=torch.long)
    mask = torch.ones(2, 3, dtype=torch.bool)

    with pytest.raises(ValueError, match="3-d"):
        crf(torch.randn(2, 3), tags, mask)
    with pytest.raises(ValueError, match="num_tags=4"):
        crf(torch.randn(2, 3, 5), tags, mask)
    with pytest.raises(ValueError, match="num_tags=4"):
        crf.decode(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="tags must have shape"):
        crf(emissions, tags[:, :2], mask)
    with pytest.raises(ValueError, match=r"torch\.long"):
        crf(emissions, tags.int(), mask)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        crf(emissions, tags + 4, mask)
    with pytest.raises(ValueError, match="mask must have shape"):
        crf(emissions, tags, mask[:, :2])
    with pytest.raises(ValueError, match="mask must have shape"):
        crf.decode(emissions, mask[:1])
    with pytest.raises(ValueError, match="bool"):
        crf(emissions, tags, mask.float())
    with pytest.raises(ValueError, match="reduction"):
        crf(emissions, tags, mask, reduction="avg")
    with pytest.raises(ValueError, match="floating point"):
        crf.decode(emissions.long())
    with pytest.raises(ValueError, match="seq_len >= 1"):
        crf.decode(torch.randn(2, 0, 4))


@pytest.mark.parametrize(
    "rows",
    [
        [[1, 1, 1], [0, 1, 1]],  # starts with padding (right-aligned)
        [[1, 0, 1], [1, 1, 1]],  # gap
    ],
)
def test_rejects_masks_that_are_not_left_aligned(rows: list[list[int]]) -> None:
    crf = CRF(4)
    emissions = torch.randn(2, 3, 4)
    mask = torch.tensor(rows, dtype=torch.bool)
    with pytest.raises(ValueError, match="mask must"):
        crf(emissions, torch.zeros(2, 3, dtype=torch.long), mask)
    with pytest.raises(ValueError, match="mask must"):
        crf.decode(emissions, mask)


def test_rejects_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="num_tags"):
        CRF(0)
    with pytest.raises(ValueError, match=r"allowed must have shape \(3, 3\)"):
        CRF(3, allowed=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"allowed_start must be torch\.bool"):
        CRF(3, allowed_start=torch.ones(3))
    with pytest.raises(ValueError, match=r"allowed_end must have shape \(3,\)"):
        CRF(3, allowed_end=torch.ones(2, dtype=torch.bool))


# ---------------------------------------------------------------- allowed_transitions


def _allowed_pairs(tags: list[str]) -> set[tuple[str, str]]:
    allowed, _, _ = allowed_transitions(tags)
    return {(tags[i], tags[j]) for i, j in allowed.nonzero().tolist()}


def test_allowed_transitions_bio() -> None:
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed, start, end = allowed_transitions(tags)
    assert allowed.shape == (5, 5) and allowed.dtype == torch.bool
    into_i_per = {a for a, b in _allowed_pairs(tags) if b == "I-PER"}
    assert into_i_per == {"B-PER", "I-PER"}
    into_i_loc = {a for a, b in _allowed_pairs(tags) if b == "I-LOC"}
    assert into_i_loc == {"B-LOC", "I-LOC"}
    # Everything not entering an I- tag is allowed.
    assert all(allowed[:, [0, 1, 3]].flatten().tolist())
    assert start.tolist() == [True, True, False, True, False]
    assert end.tolist() == [True] * 5


def test_allowed_transitions_bioes() -> None:
    tags = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    _, start, end = allowed_transitions(tags)
    pairs = _allowed_pairs(tags)

    def successors(tag: str) -> set[str]:
        return {b for a, b in pairs if a == tag}

    open_anywhere = {"O", "B-PER", "S-PER", "B-LOC", "S-LOC"}
    assert successors("B-PER") == {"I-PER", "E-PER"}
    assert successors("I-PER") == {"I-PER", "E-PER"}
    assert successors("B-LOC") == {"I-LOC", "E-LOC"}
    for tag in ("O", "E-PER", "S-PER", "E-LOC", "S-LOC"):
        assert successors(tag) == open_anywhere
    assert [tags[i] for i in start.nonzero().flatten().tolist()] == [
        "O", "B-PER", "S-PER", "B-LOC", "S-LOC"
    ]
    assert [tags[i] for i in end.nonzero().flatten().tolist()] == [
        "O", "E-PER", "S-PER", "E-LOC", "S-LOC"
    ]


def test_allowed_transitions_detects_scheme_and_rejects_unknown_tags() -> None:
    # No S-/E- tags: BIO, where I-X may end a sequence.
    _, _, end = allowed_transitions(["O", "B-X", "I-X"])
    assert end.tolist() == [True, True, True]
    # One E- tag switches to BIOES, where it may not.
    _, _, end = allowed_transitions(["O", "B-X", "I-X", "E-X"])
    assert end.tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="'PAD'"):
        allowed_transitions(["O", "B-X", "PAD"])
    with pytest.raises(ValueError, match="'X-Y'"):
        allowed_transitions(["O", "B-X", "X-Y"])
    with pytest.raises(ValueError, match="empty"):
        allowed_transitions([])


def test_from_tags_registers_constraint_buffers() -> None:
    crf = CRF.from_tags(["O", "B-X", "I-X"])
    names = dict(crf.named_buffers())
    assert set(names) == {"allowed", "allowed_start", "allowed_end"}
    assert set(crf.state_dict()) >= {"allowed", "allowed_start", "allowed_end", "transitions"}
