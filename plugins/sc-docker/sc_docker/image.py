"""Build the sandbox image locally, without a registry: ``python -m sc_docker.image``.

Where no image registry answers (CI, air-gapped clusters), ``python:3.12-slim`` cannot be
pulled. The worker needs nothing but a Python 3.10+ with its standard library, so this builds
an image from the interpreter that runs it: its binary, its standard library (less the test
suite, IDLE, Tk and installers), its compiled modules and the shared libraries they link, each
at the same absolute path as on the host (the interpreter finds its library relative to
itself), plus ``/usr/local/bin/python``. Nothing else: no shell, no ``/etc/passwd``, no package
manager. The tarball goes to the engine as ``docker import`` would send it, so no base image
is pulled either.

Use it with ``SC_DOCKER_IMAGE=sc-sandbox:local`` (the default tag here).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sc_core.errors import ScError

DEFAULT_TAG = "sc-sandbox:local"
SKIPPED = {"site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo"}
SKIPPED |= {"ensurepip", "lib2to3", "pydoc_data", "venv"}
TEST_DIRS = {"test", "tests"}  # at any depth: ctypes/test, unittest/test, distutils/tests
SKIPPED_MODULES = ("_tkinter.", "_test", "xxlimited")
SKIPPED_SUFFIXES = (".opt-1.pyc", ".opt-2.pyc")  # the worker never runs with -O
EMPTY_DIRS = ("etc", "tmp", "proc", "sys", "dev")
PYTHON_LINK = "usr/local/bin/python"
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def interpreter() -> Path:
    """The real binary behind this Python (through venvs and symlinks)."""
    return Path(getattr(sys, "_base_executable", sys.executable)).resolve()


def stdlib_files(stdlib: Path) -> Iterator[Path]:
    """The standard library, compiled modules and bytecode included, less what no job uses."""
    for folder, dirs, files in os.walk(stdlib):
        here = Path(folder)
        if here == stdlib:
            dirs[:] = [d for d in dirs if d not in SKIPPED and not d.startswith("config-")]
        dirs[:] = [d for d in dirs if d not in TEST_DIRS]
        for name in files:
            if not name.startswith(SKIPPED_MODULES) and not name.endswith(SKIPPED_SUFFIXES):
                yield here / name


def shared_libraries(binaries: list[Path]) -> set[str]:
    """Every library the binaries link (``ldd``), the dynamic loader included."""
    found: set[str] = set()
    for start in range(0, len(binaries), 200):
        batch = [str(path) for path in binaries[start : start + 200]]
        try:
            result = subprocess.run(["ldd", *batch], capture_output=True, text=True, check=False)
        except FileNotFoundError as error:
            raise ScError("ldd is missing: it finds the libraries the interpreter needs") from error
        found.update(match.group(1) for match in _LDD_PATH.finditer(result.stdout))
    return found


def _is_elf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


def rootfs_files() -> dict[str, Path]:
    """Image path (relative, no leading slash) -> host file, for this interpreter."""
    python = interpreter()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    files = {str(path).lstrip("/"): path for path in stdlib_files(stdlib)}
    files[str(python).lstrip("/")] = python
    binaries = [python] + [p for p in files.values() if p.suffix == ".so" and _is_elf(p)]
    for library in shared_libraries(binaries):
        files[library.lstrip("/")] = Path(library).resolve()  # the file, at the path it is named
    return files


def _directories(paths: list[str]) -> list[str]:
    parents = {str(parent) for path in paths for parent in Path(path).parents}
    return sorted((parents - {"."}) | set(EMPTY_DIRS))


def write_rootfs(target: Any) -> int:
    """Write the image's root file system as a tar stream into ``target``; returns its files.

    Owners are root, modes readable by everyone (the worker runs as ``nobody``, and a pyenv
    Python lives under ``/root``): folders 0755 (``/tmp`` 1777), files 0644 or 0755.
    """
    python, files = interpreter(), rootfs_files()
    with tarfile.open(fileobj=target, mode="w|") as tar:
        for folder in _directories([*files, PYTHON_LINK]):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        for name, source in sorted(files.items()):
            info = tar.gettarinfo(str(source), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o755 if info.mode & 0o111 else 0o644
            with open(source, "rb") as handle:
                tar.addfile(info, handle)
        link = tarfile.TarInfo(PYTHON_LINK)
        link.type, link.linkname, link.mode = tarfile.SYMTYPE, str(python), 0o777
        tar.addfile(link)
    return len(files)


def split_tag(tag: str) -> tuple[str, str]:
    """``name:version`` -> (name, version); ``latest`` where none is given (``host:5000/name``)."""
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        return tag, "latest"
    return repository, version


def build_image(client: Any, tag: str = DEFAULT_TAG) -> str:
    """Import the root file system into the engine as ``tag``; returns the image id."""
    repository, version = split_tag(tag)
    with tempfile.TemporaryFile() as rootfs:
        write_rootfs(rootfs)
        rootfs.seek(0)
        changes = ["ENV PATH=/usr/local/bin:/usr/bin:/bin", 'CMD ["python"]']
        try:
            answer = client.api.import_image(
                src=rootfs, repository=repository, tag=version, changes=changes
            )
        except Exception as error:
            raise ScError(
                f"the Docker engine refused the sandbox image {tag!r}: {error}"
            ) from error
    image_id = _imported_id(answer)
    if not image_id:
        raise ScError(f"the Docker engine did not import the sandbox image: {answer!r:.300}")
    return image_id


def _imported_id(answer: str) -> str | None:
    """The new image's id: the ``status`` of the engine's last JSON line."""
    for line in reversed(answer.splitlines()):
        try:
            status = str(json.loads(line).get("status", ""))
        except (ValueError, AttributeError):
            continue
        if status.startswith("sha256:"):
            return status
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sc_docker.image",
        description="Build the docker sandbox's image from this Python, without a registry.",
    )
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"image name (default {DEFAULT_TAG})")
    parser.add_argument(
        "--tar", type=Path, help="write the root file system to this tarball instead"
    )
    options = parser.parse_args(argv)
    try:
        print(_write_tar(options.tar) if options.tar else _import(options.tag))
    except (ScError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _write_tar(path: Path) -> str:
    with open(path, "wb") as target:
        return f"{path}: {write_rootfs(target)} files"


def _import(tag: str) -> str:
    from .sandbox import API_TIMEOUT_S, _docker_client, no_engine_reason

    try:
        client = _docker_client(API_TIMEOUT_S)
        client.ping()
    except Exception as error:
        raise ScError(no_engine_reason(error)) from error
    return f"{tag} {build_image(client, tag)}"


if __name__ == "__main__":
    sys.exit(main())
