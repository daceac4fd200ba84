"""An image declared with the SDK's `ImageInstance` methods, without importing the SDK.

Importing `blaxel` costs about 1.5 s (it loads its MCP and agent clients); a no-op preview needs
only an image's Dockerfile and files, for its digest. `ImageRecipe` takes the same builder calls
as `blaxel.core.image.ImageInstance` (the subset this package uses), renders the same
Dockerfile (SDK `core/image/image.py`: each method's instruction text, through the same
`DockerfileParser`), and records the calls, so the push replays them on a real
`ImageInstance` (`to_instance()`): what is built is what the SDK would have built.
tests/infra/test_image_recipe.py pins that both render the same Dockerfile and files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LocalFile:
    """A local file or folder copied into the image (the SDK's `LocalFile` fields)."""

    source_path: Path
    destination_path: str
    context_name: str


@dataclass(frozen=True)
class ImageRecipe:
    """An immutable image declaration; every builder method returns a new recipe."""

    base_image: str
    instructions: tuple[str, ...] = ()
    local_files: tuple[LocalFile, ...] = ()
    calls: tuple[tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]], ...] = field(
        default=(), repr=False
    )

    @classmethod
    def from_registry(cls, tag: str) -> ImageRecipe:
        return cls(base_image=tag)

    def _with(
        self,
        call: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        instructions: list[str],
        local: LocalFile | None = None,
    ) -> ImageRecipe:
        return ImageRecipe(
            base_image=self.base_image,
            instructions=(*self.instructions, *instructions),
            local_files=(*self.local_files, *([local] if local else [])),
            calls=(*self.calls, (call, args, tuple(kwargs.items()))),
        )

    # -- the builder methods (same names, arguments and instruction text as the SDK's) -------

    def workdir(self, path: str) -> ImageRecipe:
        return self._with("workdir", (path,), {}, [f"WORKDIR {path}"])

    def run_commands(self, *commands: str) -> ImageRecipe:
        return self._with("run_commands", commands, {}, [f"RUN {cmd}" for cmd in commands])

    def pip_install(self, *packages: str, extra_options: str = "") -> ImageRecipe:
        if not packages:
            return self
        cmd = " ".join(f"pip install {extra_options} {' '.join(packages)}".split())
        kwargs = {"extra_options": extra_options} if extra_options else {}
        return self._with("pip_install", packages, kwargs, [f"RUN {cmd}"])

    def apt_install(self, *packages: str, update: bool = True, clean: bool = True) -> ImageRecipe:
        if not packages:
            return self
        commands = ["apt-get update"] if update else []
        commands.append(f"apt-get install -y --no-install-recommends {' '.join(packages)}")
        if clean:
            commands.append("rm -rf /var/lib/apt/lists/*")
        kwargs = {"update": update, "clean": clean}
        return self._with("apt_install", packages, kwargs, [f"RUN {' && '.join(commands)}"])

    def npm_install(self, *packages: str, global_install: bool = False) -> ImageRecipe:
        flag = "-g " if global_install else ""
        cmd = " ".join(
            (f"npm install {flag}{' '.join(packages)}" if packages else "npm install").split()
        )
        kwargs = {"global_install": global_install}
        return self._with("npm_install", packages, kwargs, [f"RUN {cmd}"])

    def env(self, **variables: str) -> ImageRecipe:
        if not variables:
            return self
        lines = [f'ENV {key}="{value}"' for key, value in variables.items()]
        return self._with("env", (), variables, lines)

    def add_local_file(
        self, source_path: str, destination: str, context_name: str | None = None
    ) -> ImageRecipe:
        return self._add("add_local_file", source_path, destination, context_name)

    def add_local_dir(
        self, source_path: str, destination: str, context_name: str | None = None
    ) -> ImageRecipe:
        return self._add("add_local_dir", source_path, destination, context_name)

    def _add(
        self, call: str, source_path: str, destination: str, context_name: str | None
    ) -> ImageRecipe:
        source = Path(source_path).resolve()
        name = context_name or source.name
        local = LocalFile(source, destination, name)
        args = (source_path, destination)
        kwargs = {"context_name": context_name} if context_name else {}
        return self._with(call, args, kwargs, [f"COPY {name} {destination}"], local)

    def entrypoint(self, *args: str) -> ImageRecipe:
        if not args:
            return self
        words = ", ".join(f'"{arg}"' for arg in args)
        return self._with("entrypoint", args, {}, [f"ENTRYPOINT [{words}]"])

    # -- reading it -----------------------------------------------------------------------------

    @property
    def dockerfile(self) -> str:
        """The Dockerfile, rendered as the SDK renders it (`ImageBuildContext.generate_dockerfile`)."""
        from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

        parser = DockerfileParser(fileobj=io.BytesIO())
        parser.content = f"FROM {self.base_image}\n"
        if self.instructions:
            parser.add_lines("\n".join(self.instructions))
        return str(parser.content)

    def to_instance(self) -> Any:
        """The same image as the SDK's `ImageInstance` (imports the SDK), for a push."""
        from blaxel.core.image import ImageInstance

        image = ImageInstance.from_registry(self.base_image)
        for name, args, kwargs in self.calls:
            image = getattr(image, name)(*args, **dict(kwargs))
        return image
