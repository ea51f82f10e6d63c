"""Fixtures for the plugin tests: fake installed distributions, and the example plugin's sources."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parents[1] / "examples" / "plugin"


@pytest.fixture
def install_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Make a module look pip-installed with an ``engine.plugins`` entry point: a module and a dist-info folder on a
    fresh sys.path entry, which is what importlib.metadata reads. Seconds faster than pip, and leaves nothing behind."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(module: str, source: str, *, entry_point: str | None = None, dist: str | None = None,
                version: str = "1.0", requires: tuple[str, ...] = ()) -> None:
        entry_point = entry_point or module
        dist = dist or module.replace("_", "-")
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        requirements = "".join(f"Requires-Dist: {r}\n" for r in requires)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{requirements}",
                                       encoding="utf-8")
        (info / "entry_points.txt").write_text(f"[engine.plugins]\n{entry_point} = {module}\n", encoding="utf-8")
        importlib.invalidate_caches()

    yield install
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(site)):
            del sys.modules[name]


@pytest.fixture
def ordinal_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example plugin importable (not installed): task files name it in ``"plugins"``."""
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
