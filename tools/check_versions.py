#!/usr/bin/env python3
"""Checks every package's version hygiene.

- each ``packages/*/pyproject.toml`` has a ``[project] version``;
- its ``CHANGELOG.md`` has a ``## <version>`` entry;
- its ``__version__`` (if any) matches;
- dependencies on sister packages are compatible ranges (``>=a,<b``), never ``==``,
  and admit the sister's current version.

Exits non-zero with one line per problem.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_REQ = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(\[[^\]]*\])?\s*(.*)$")


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def _admits(spec: str, version: str) -> bool:
    v = _version_tuple(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.match(r"(>=|<=|<|>|~=|!=)\s*([\d.]+)", clause)
        if not m:
            return False
        op, bound = m.group(1), _version_tuple(m.group(2))
        ok = {
            ">=": v >= bound,
            "<=": v <= bound,
            "<": v < bound,
            ">": v > bound,
            "!=": v != bound,
            "~=": v >= bound and v[: len(bound) - 1] == bound[:-1],
        }[op]
        if not ok:
            return False
    return True


def check(root: Path = ROOT) -> list[str]:
    problems: list[str] = []
    packages = {}
    for pyproject in sorted((root / "packages").glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text())
        project = data.get("project", {})
        name = project.get("name")
        version = project.get("version")
        if not name or not version:
            problems.append(f"{pyproject}: [project] needs a name and a version")
            continue
        packages[name] = (pyproject.parent, project, version)

    for name, (path, project, version) in packages.items():
        changelog = path / "CHANGELOG.md"
        if not changelog.exists():
            problems.append(f"{name}: no CHANGELOG.md")
        elif not re.search(
            rf"^##\s*\[?{re.escape(version)}\]?(\s|$)", changelog.read_text(), re.M
        ):
            problems.append(f"{name}: CHANGELOG.md has no '## {version}' entry")
        module = name.replace("-", "_")
        init = path / "src" / module / "__init__.py"
        if init.exists():
            m = re.search(r'^__version__\s*=\s*"([^"]+)"', init.read_text(), re.M)
            if m and m.group(1) != version:
                problems.append(
                    f"{name}: __version__ {m.group(1)} != pyproject version {version}"
                )
        reqs = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            reqs += extra
        for req in reqs:
            m = _REQ.match(req.split(";")[0])
            if not m or m.group(1) not in packages:
                continue
            sister, spec = m.group(1), m.group(3).strip()
            if "==" in spec or "===" in spec:
                problems.append(f"{name}: pins sister {sister} with == ({req!r})")
            elif "<" not in spec or ">=" not in spec:
                problems.append(
                    f"{name}: sister {sister} needs a compatible range '>=a,<b' "
                    f"({req!r})"
                )
            elif not _admits(spec, packages[sister][2]):
                problems.append(
                    f"{name}: {req!r} excludes {sister}'s version {packages[sister][2]}"
                )
    return problems


def main() -> int:
    problems = check()
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(
            "versions: every package has a version, a CHANGELOG entry and "
            "compatible sister ranges."
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
