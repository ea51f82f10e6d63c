"""Tag schemes: reading BIO, IOB1, BIOES and BILOU tags as entity spans, and writing spans back as BIO tags.

Spans are read the way conlleval and seqeval (default mode) read them, so an ill-formed sequence (``O I-PER``,
``B-PER I-LOC``) gives the same entities here as in those tools. Every scheme is converted to BIO through its spans,
which makes the conversion exact by construction: the spans of the converted tags are the spans of the originals.

Why BIO inside: the three shipped corpora and the usual evaluation use it; it has 2k+1 tags for k types where BIOES
has 4k+1 (the CRF's cost grows with the square of the tag count, and a softmax head has fewer rare tags to learn);
and the CRF's transition constraints already rule out the sequences that make BIO ambiguous. Pure Python, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OUTSIDE = "O"

#: The prefix letters each scheme may use (besides the plain tag ``O``).
PREFIXES: dict[str, str] = {"bio": "BI", "iob1": "BI", "bioes": "BIES", "bilou": "BILU"}
# BILOU names BIOES's E and S as L (last) and U (unit).
_AS_BIOES = {"L": "E", "U": "S"}


class TagError(ValueError):
    """A tag that no scheme reads, or one outside the scheme in use; ``index`` is its position in the sequence."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class Entity:
    """A span of tokens ``[start, end)`` of one type."""

    type: str
    start: int
    end: int


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``. Raises ``ValueError`` for anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, kind = tag.partition("-")
    if not sep or not kind or len(prefix) != 1 or prefix not in "BIESLU":
        raise ValueError(f"tag {tag!r} is not 'O' or PREFIX-TYPE with PREFIX one of B, I, E, S, L, U (e.g. 'B-PER')")
    return prefix, kind


def entities(tags: Sequence[str]) -> list[Entity]:
    """The entity spans of a tag sequence in any of the schemes, read as conlleval/seqeval read them.

    A span starts at B or S (U), at I or E (L) after O, E or S, and at any tag whose type differs from the previous
    one; it ends before O, B or S, after E or S, and where the type changes.
    """
    found: list[Entity] = []
    prev_prefix, prev_type, start = OUTSIDE, "", 0
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, kind = split_tag(tag)
        prefix = _AS_BIOES.get(prefix, prefix)
        if _ends(prev_prefix, prefix, prev_type, kind):
            found.append(Entity(prev_type, start, i))
        if _starts(prev_prefix, prefix, prev_type, kind):
            start = i
        prev_prefix, prev_type = prefix, kind
    return found


def _ends(prev: str, cur: str, prev_type: str, kind: str) -> bool:
    if prev == OUTSIDE:
        return False
    return prev in "ES" or cur in "BSO" or prev_type != kind


def _starts(prev: str, cur: str, prev_type: str, kind: str) -> bool:
    if cur == OUTSIDE:
        return False
    return cur in "BS" or prev in "OES" or prev_type != kind


def to_bio(spans: Iterable[Entity], length: int) -> list[str]:
    """BIO tags for ``length`` tokens from non-overlapping spans."""
    tags = [OUTSIDE] * length
    for span in spans:
        tags[span.start] = f"B-{span.type}"
        for i in range(span.start + 1, span.end):
            tags[i] = f"I-{span.type}"
    return tags


def normalize(tags: Sequence[str]) -> list[str]:
    """Any scheme's tags as well-formed BIO with the same spans (``O I-PER`` becomes ``O B-PER``)."""
    return to_bio(entities(tags), len(tags))


# --- which scheme ------------------------------------------------------------------------------------------------


def check_scheme(tags: Sequence[str], scheme: str) -> None:
    """Raise ``TagError`` at the first tag that is malformed or uses a prefix ``scheme`` does not have."""
    allowed = PREFIXES[scheme]
    for i, tag in enumerate(tags):
        try:
            prefix, _ = split_tag(tag)
        except ValueError as exc:
            raise TagError(str(exc), i) from None
        if prefix != OUTSIDE and prefix not in allowed:
            raise TagError(
                f"tag {tag!r} is not a {scheme.upper()} tag ({scheme.upper()} prefixes: {', '.join(allowed)})", i
            )


def starts_with_inside(tags: Sequence[str]) -> bool:
    """Whether some entity begins with an I- tag (IOB1 style, or ill-formed BIO)."""
    prev_prefix, prev_type = OUTSIDE, ""
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "I" and (prev_prefix == OUTSIDE or prev_type != kind):
            return True
        prev_prefix, prev_type = prefix, kind
    return False


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """The scheme a corpus uses, from its prefixes: S/E mean BIOES, L/U mean BILOU, an entity that begins with I-
    means IOB1, anything else is BIO. Raises ``ValueError`` when one corpus mixes BIOES and BILOU prefixes."""
    seen: set[str] = set()
    inside_first = False
    for tags in sequences:
        for tag in tags:
            seen.add(split_tag(tag)[0])
        inside_first = inside_first or starts_with_inside(tags)
    bioes, bilou = seen & set("ES"), seen & set("LU")
    if bioes and bilou:
        raise ValueError(
            f"the tags mix BIOES prefixes ({', '.join(sorted(bioes))}-) with BILOU prefixes "
            f"({', '.join(sorted(bilou))}-); "
            "use one scheme throughout"
        )
    if bilou:
        return "bilou"
    if bioes:
        return "bioes"
    return "iob1" if inside_first else "bio"
