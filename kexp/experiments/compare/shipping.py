"""A run folder as bytes: how a training done on another machine reaches the study folder.

A cluster engine assumes no shared filesystem, so a worker trains into a folder of its own and
sends the whole run folder back as one tar archive (and, while it trains, its latest checkpoint
the same way). On arrival the archive is unpacked into a hidden temporary folder beside its
destination and renamed into place, so the study's runs/ holds either the complete run folder or
nothing of it, never a half copy. No Keras, no Ray: both ends of the wire use this module.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path

from kexp.storage import runs


# The archive's last member: the names of all the others. A cut archive can still read as a
# valid, shorter tar (tar has no length or checksum of its own); without its manifest it is
# refused.
MANIFEST = ".kexp-manifest.json"


class ShippingError(runs.RunError):
    """An archive that does not hold exactly one complete run folder."""


def _entries(run_dir: Path):
    """(path, name in the archive) of every folder and file of the run, parents first; hidden
    names (files being written to a temporary name) are left out."""
    yield run_dir, run_dir.name
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if not any(part.startswith(".") for part in relative.parts):
            yield path, f"{run_dir.name}/{relative.as_posix()}"


def pack_run(run_dir: Path) -> bytes:
    """The run folder as an uncompressed tar (its npz, PNG and .keras files are compressed or
    do not compress). It may be packed while the training still writes: every kexp file is
    replaced atomically, so each is read whole, old or new; history.csv, the one file appended
    to, is cut after its last complete row."""
    buffer, names = io.BytesIO(), []
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, name in _entries(Path(run_dir)):
            info = tarfile.TarInfo(name)
            try:
                info.mtime = int(path.stat().st_mtime)
                if path.is_dir():
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    archive.addfile(info)
                    continue
                data = path.read_bytes()
            except FileNotFoundError:  # an older checkpoint, deleted since the listing
                continue
            if path.name == runs.HISTORY_FILE:
                data = data[:data.rfind(b"\n") + 1]
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
            names.append(name)
        manifest = json.dumps(names).encode()
        info = tarfile.TarInfo(f"{Path(run_dir).name}/{MANIFEST}")
        info.size, info.mode = len(manifest), 0o644
        archive.addfile(info, io.BytesIO(manifest))
    return buffer.getvalue()


def archive_run_name(archive: bytes) -> str:
    """The name of the one run folder in `archive`."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tops = {member.name.split("/")[0] for member in tar.getmembers()}
    if len(tops) != 1 or not next(iter(tops)) or next(iter(tops)).startswith("."):
        raise ShippingError(f"Invalid run archive: expected one run folder, found "
                            f"{sorted(tops) or 'nothing'}.")
    return tops.pop()


def land_run(archive: bytes, runs_dir: Path) -> Path:
    """Unpack the run folder in `archive` into `runs_dir` atomically and return it. A folder of
    the same name (the same run, from an earlier checkpoint) is replaced by the new one."""
    runs_dir = Path(runs_dir)
    name = archive_run_name(archive)
    target = runs_dir / name
    arriving = Path(tempfile.mkdtemp(prefix=".arriving-", dir=runs_dir))
    replaced = runs_dir / f".replaced-{uuid.uuid4().hex[:8]}"
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(arriving, filter="data")  # no absolute paths, links or "..": refused
        _check_complete(arriving / name)
        if target.exists():
            os.replace(target, replaced)
        try:
            os.replace(arriving / name, target)
        except BaseException:
            if replaced.exists():
                os.replace(replaced, target)
            raise
    finally:
        shutil.rmtree(arriving, ignore_errors=True)
        shutil.rmtree(replaced, ignore_errors=True)
    return target


def _check_complete(run_dir: Path) -> None:
    """Every file the manifest lists arrived whole; then the manifest goes."""
    manifest = run_dir / MANIFEST
    if not manifest.is_file():
        raise ShippingError(f"Invalid run archive: '{run_dir.name}' arrived cut short "
                            f"(no {MANIFEST}).")
    missing = [name for name in json.loads(manifest.read_text())
               if not (run_dir.parent / name).is_file()]
    if missing:
        raise ShippingError(f"Invalid run archive: '{run_dir.name}' lacks {missing[:3]}.")
    manifest.unlink()


def latest_checkpoint(run_dir: Path) -> str | None:
    """The name of the run's newest per-epoch checkpoint file, or None before the first."""
    names = sorted(path.name for path in
                   (Path(run_dir) / runs.CHECKPOINT_DIR).glob(f"{runs.EPOCH_PREFIX}*"))
    return names[-1] if names else None
