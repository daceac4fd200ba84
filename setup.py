"""Only for what pyproject.toml cannot say: the image packages read `<package root>/
requirements.txt` (orchestrator_app/image.py, worker/image.py), so the wheel puts it beside
them in site-packages."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithRequirements(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file("requirements.txt", str(Path(self.build_lib) / "requirements.txt"))


setup(cmdclass={"build_py": BuildPyWithRequirements})
