"""Print requirement lines from pyproject.toml, for the Dockerfile's dependency layers.

    python requirements.py postgres s3     the dependencies plus those extras
    python requirements.py --only cpu      one extra's lines alone (vLLM's venv)

Installing these before the code is copied keeps torch and vLLM in layers a code change does not
rebuild. The extras' self-references (`neuroplast[postgres]`) are left out: their lines are listed.
"""

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str], only: bool = False) -> list[str]:
    """The requirement lines of `pyproject` (unless `only`) and of each extra in `extras`."""
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = [] if only else list(project["dependencies"])
    for name in extras:
        lines += [
            line for line in project["optional-dependencies"][name] if not line.startswith("neuroplast")
        ]
    return lines


if __name__ == "__main__":
    arguments = sys.argv[1:]
    only = "--only" in arguments
    names = [argument for argument in arguments if argument != "--only"]
    print("\n".join(requirements(Path("pyproject.toml"), names, only)))
