"""The local sandbox image's root file system (``python -m sc_docker.image``), without an engine:
what goes in, and that the ``nobody`` user can run it. ``test_engine.py`` imports and runs it."""

from __future__ import annotations

import io
import stat
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
from sc_docker.image import (
    PYTHON_LINK,
    interpreter,
    main,
    rootfs_files,
    split_tag,
    write_rootfs,
)


@pytest.fixture(scope="module")
def rootfs() -> tarfile.TarFile:
    data = io.BytesIO()
    write_rootfs(data)
    data.seek(0)
    return tarfile.open(fileobj=data)


def test_the_interpreter_its_library_and_its_shared_libraries_go_in():
    files = rootfs_files()
    python = interpreter()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert files[str(python).lstrip("/")] == python
    assert str(stdlib / "json" / "__init__.py").lstrip("/") in files
    names = {Path(name).name for name in files}
    assert "libc.so.6" in names and any(name.startswith("ld-linux") for name in names)
    assert any(name.startswith("_ctypes.") for name in names)  # the worker's seccomp filter
    assert not [name for name in files if "/site-packages/" in name or "/test/" in name]
    assert not [name for name in files if name.endswith((".opt-1.pyc", ".opt-2.pyc"))]


def test_nobody_can_read_everything_and_python_is_on_the_path(rootfs):
    members = {member.name: member for member in rootfs.getmembers()}
    for member in members.values():
        assert member.uid == 0 and member.gid == 0, member.name
        if member.isdir():
            expected = 0o1777 if member.name == "tmp" else 0o755
            assert member.mode == expected, member.name
        elif member.isfile():
            assert member.mode & stat.S_IROTH, member.name
    assert {"etc", "tmp", "proc", "sys", "dev"} <= set(members)
    link = members[PYTHON_LINK]
    assert link.issym() and link.linkname == str(interpreter())
    assert not [name for name in members if name.startswith("etc/")]  # no passwd, no shadow


def test_the_cli_writes_a_tarball(tmp_path, capsys):
    target = tmp_path / "rootfs.tar"
    assert main(["--tar", str(target)]) == 0
    assert f"{target}: " in capsys.readouterr().out
    with tarfile.open(target) as tar:
        assert PYTHON_LINK in tar.getnames()


def test_without_an_engine_the_cli_says_so_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "sc_docker.image"],
        capture_output=True,
        text=True,
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: no Docker engine answers at unix:///nonexistent")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("tag", "parts"),
    [
        ("sc-sandbox:local", ("sc-sandbox", "local")),
        ("sc-sandbox", ("sc-sandbox", "latest")),
        ("localhost:5000/sc", ("localhost:5000/sc", "latest")),
        ("localhost:5000/sc:v1", ("localhost:5000/sc", "v1")),
    ],
)
def test_a_tag_splits_into_repository_and_version(tag, parts):
    assert split_tag(tag) == parts
