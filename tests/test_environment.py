"""environment.yml (conda) must name every dependency of pyproject.toml (the pip truth)."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_names_every_pyproject_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    environment = (ROOT / "environment.yml").read_text()
    named = {name(m) for m in re.findall(r"^\s*-\s*([A-Za-z0-9_.\-]+[^\n#]*)", environment, flags=re.M)}
    named |= {name(m) for m in re.findall(r"pip install[^`\n]*?\s([A-Za-z0-9_\-]+)>=", environment)}
    missing = required - named
    assert not missing, f"environment.yml lacks {sorted(missing)}"


def test_environment_pins_python():
    assert re.search(r"^\s*-\s*python\s*=", (ROOT / "environment.yml").read_text(), flags=re.M)
