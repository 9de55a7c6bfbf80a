"""The README's Python example runs as printed (with torch and diffusers installed)."""

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

if os.environ.get("PFODE_REQUIRE_TORCH") != "1":
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_readme_python_example_runs_and_counts_10_nfe():
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) == 1
    out = io.StringIO()
    scope = {}
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), scope)
    assert scope["info"]["nfe"] == 10
    assert scope["x0"].shape == (64, 1, 8, 8)
    assert max(scope["pfode"].check_ddim_euler(scope["model"], scope["x_T"][:8], steps=[10])
               ["ddim_vs_euler_sigma_rel"]) < 1e-11
    assert out.getvalue().startswith("10 [")
