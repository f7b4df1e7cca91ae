"""Imports flow one way: layers -> models -> diffusion/pipelines -> training -> cli (DESIGN.md).

`metrics` and `diffusion` take models as arguments and never import training or the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "t2v"

# For each package: the t2v packages it must never import.
FORBIDDEN = {
    "layers": {"models", "diffusion", "pipelines", "training", "cli", "serve", "metrics", "data"},
    "models": {"diffusion", "pipelines", "training", "cli", "serve", "metrics"},
    "diffusion": {"pipelines", "training", "cli", "serve", "metrics", "data"},
    "data": {"layers", "models", "diffusion", "pipelines", "training", "cli", "serve"},
    "metrics": {"training", "cli", "serve", "pipelines"},
    "pipelines": {"training", "cli", "serve"},
    "training": {"cli", "serve"},
    "serve": {"cli"},  # the web page sits beside the CLI: it may use everything below
}


def _t2v_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            # relative import: resolve against the file's package
            pkg = path.relative_to(SRC).parts[:-1]
            base = list(pkg[: len(pkg) - (node.level - 1)]) if node.level > 1 else list(pkg)
            names = ["t2v." + ".".join(base + ([node.module] if node.module else []))]
        else:
            continue
        for n in names:
            if n.startswith("t2v."):
                found.add(n.split(".")[1])
    return found


def test_imports_flow_one_way():
    bad = []
    for pkg, forbidden in FORBIDDEN.items():
        for f in (SRC / pkg).rglob("*.py"):
            hit = _t2v_imports(f) & forbidden
            if hit:
                bad.append(f"{f.relative_to(SRC)} imports {sorted(hit)}")
    assert bad == [], "\n".join(bad)


def test_checker_sees_a_violation(tmp_path):
    # The checker itself must be able to fail: a file importing t2v.cli is reported.
    f = SRC / "layers" / "_probe_violation.py"
    f.write_text("from t2v.cli import main\n")
    try:
        assert "cli" in _t2v_imports(f)
    finally:
        f.unlink()
