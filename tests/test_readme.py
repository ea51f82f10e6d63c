"""The README's Quick start stays true: two commands, and CI runs the test command exactly as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_quick_start_has_two_commands_install_and_run_then_test():
    commands = quick_start_commands()
    assert len(commands) == 2
    main, tests = commands
    assert main.startswith("pip install torch==2.13.0") and "engine run examples/" in main
    assert tests.startswith("pip install torch==2.13.0") and "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert quick_start_commands()[1] in ci


def test_the_main_command_names_an_example_that_exists():
    task = re.search(r"engine run (\S+)", quick_start_commands()[0]).group(1)
    assert (ROOT / task).is_file()
