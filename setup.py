"""Packaging hook: ship the top-level shaders/*.wgsl inside the installed engine.

All metadata lives in pyproject.toml. This file only extends build_py so that every
wheel contains engine/shaders/*.wgsl, copied from the single source in shaders/.
Editable installs skip the copy: the engine then reads ../shaders next to engine/.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithShaders(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib, "engine", "shaders")
        sources = sorted((HERE / "shaders").glob("*.wgsl"))
        if sources:
            target.mkdir(parents=True, exist_ok=True)
        for src in sources:
            shutil.copy2(src, target / src.name)


setup(cmdclass={"build_py": BuildPyWithShaders})
