"""The built-in plugins. Each module is one plugin, registered through the ``engine.plugins`` entry-point group
exactly as a third-party plugin is (see pyproject.toml), and each is a worked example for plugin authors.

Declaration modules import no torch at the top, so ``engine validate`` stays fast; the heavy code they point at
is imported when a component is built.
"""
