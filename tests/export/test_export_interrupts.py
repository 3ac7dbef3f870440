"""An export that is interrupted (Ctrl-C, kill) or runs out of disk leaves nothing half-written that
a rerun would take as finished, keeps the previous export intact, and a rerun works (issue 8).
Real mechanisms only: a subprocess sent SIGINT / SIGKILL mid-export, a small tmpfs filled for real."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.export_test_utils import MAX_LENGTH
from mlx_distill.fileio import DiskFullError, atomic_write_json, staged_directory
from export.folder import ExportConfig, export_folder

REPO = Path(__file__).resolve().parents[2]
_ENV = {**os.environ, "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
_EXPORT = ("import sys; from export.folder import ExportConfig, export_folder; "
           f"export_folder(sys.argv[1], sys.argv[2], ExportConfig(max_length={MAX_LENGTH}))")


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _interrupt_mid_export(model_dir: Path, out: Path, sig: int) -> subprocess.CompletedProcess:
    """Run an export in a subprocess and send ``sig`` once its staging folder holds a converted model."""
    proc = subprocess.Popen([sys.executable, "-c", _EXPORT, str(model_dir), str(out)], cwd=REPO, env=_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    try:
        while not list(out.parent.glob(f".{out.name}.staging-*/Classifier.mlpackage")):
            if proc.poll() is not None:
                pytest.fail(f"the export ended before it could be interrupted:\n{proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail("the export never started writing its staging folder")
            time.sleep(0.01)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture
def previous_export(bert_export, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(bert_export.out_dir, out)
    return out


# --- Ctrl-C and kill -----------------------------------------------------------------------------


def test_ctrl_c_mid_export_keeps_the_previous_export_and_a_rerun_works(bert_dir, previous_export):
    before = _tree(previous_export)
    done = _interrupt_mid_export(bert_dir, previous_export, signal.SIGINT)
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr, done.stderr
    assert _names(previous_export.parent) == ["out"], "the interrupted export left files behind"
    assert _tree(previous_export) == before
    result = export_folder(bert_dir, previous_export, ExportConfig(max_length=MAX_LENGTH, build_updatable_pipeline=False))
    assert _names(previous_export.parent) == ["out"]
    assert json.loads(result.manifest_path.read_text())["max_length"] == MAX_LENGTH
    assert "UpdatablePipeline.mlmodel" not in _names(previous_export)  # the rerun's export, not the old one


def test_killed_export_leaves_only_hidden_leftovers_that_a_rerun_sweeps(bert_dir, previous_export):
    before = _tree(previous_export)
    done = _interrupt_mid_export(bert_dir, previous_export, signal.SIGKILL)
    assert done.returncode == -signal.SIGKILL
    assert _tree(previous_export) == before  # no cleanup ran, but the target was never touched
    leftovers = [n for n in _names(previous_export.parent) if n != "out"]
    assert all(n.startswith(".out.staging-") for n in leftovers), leftovers
    export_folder(bert_dir, previous_export, ExportConfig(max_length=MAX_LENGTH, build_updatable_pipeline=False,
                                                          build_encoder=False))
    assert _names(previous_export.parent) == ["out"]
    assert "Encoder.mlpackage" not in _names(previous_export)


# --- the swap journal ----------------------------------------------------------------------------


def _half_swapped(parent: Path, journal: bool, staging_left: bool) -> None:
    """The folder state of an export killed after renaming the old export to a backup."""
    for name, previous in ((".out.old-0000", "older, from some earlier run"), (".out.old-ffff", "the one swapped out")):
        (parent / name).mkdir()
        (parent / name / "manifest.json").write_text(json.dumps({"previous": previous}))
    if staging_left:
        (parent / ".out.staging-1234").mkdir()
        (parent / ".out.staging-1234" / "manifest.json").write_text("{}")
    if journal:
        atomic_write_json(parent / ".out.swap.json", {"backup": ".out.old-0000", "staging": ".out.staging-1234"})


def test_kill_between_the_two_renames_restores_exactly_the_journalled_backup(tmp_path):
    _half_swapped(tmp_path, journal=True, staging_left=True)
    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "out"):
            raise RuntimeError("this export fails too")
    assert _names(tmp_path) == ["out"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == {"previous": "older, from some earlier run"}


@pytest.mark.parametrize("journal", [False, True], ids=["no-journal", "swap-completed"])
def test_an_export_the_user_deleted_is_never_resurrected(tmp_path, journal):
    """Backups without a journal (a kill while deleting the backup of a finished swap), or with a
    journal whose staging folder was already renamed in: the target went missing afterwards, so the
    user deleted it. Nothing comes back; the leftovers are swept."""
    _half_swapped(tmp_path, journal=journal, staging_left=False)
    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "out"):
            raise RuntimeError("stop before publishing")
    assert _names(tmp_path) == []


def test_publishing_replaces_the_previous_export_and_leaves_no_journal(tmp_path):
    target = tmp_path / "out"
    for value in ("first", "second"):
        with staged_directory(target) as stage:
            (stage / "manifest.json").write_text(value)
        assert _names(tmp_path) == ["out"] and (target / "manifest.json").read_text() == value


def test_modes_follow_the_umask_without_touching_it(tmp_path, monkeypatch):
    """Folders 0o777 and files 0o666 less the umask, as any other tool writes them - and the
    process umask is never changed on the way (that would race with other threads)."""
    old = os.umask(0o027)
    try:
        def no_umask(mask):
            raise AssertionError("staged_directory changed the process umask")

        monkeypatch.setattr(os, "umask", no_umask)
        with staged_directory(tmp_path / "out") as stage:
            atomic_write_json(stage / "manifest.json", {})
        monkeypatch.undo()
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "out" / "manifest.json").stat().st_mode & 0o777 == 0o640


# --- disk full -----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """mount_small_disk(bytes) -> the mount point of a real tmpfs of that size (Linux, root)."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        if not sys.platform.startswith("linux"):
            pytest.skip("a small tmpfs to fill needs Linux")
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs to fill here (needs root): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


def _tmpfs_bytes(folder: Path) -> int:
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


def test_disk_full_keeps_the_previous_export_and_leaves_nothing_behind(bert_dir, bert_export, small_disk):
    disk = small_disk(_tmpfs_bytes(bert_export.out_dir) + 96 * 1024)  # room for the old export, not a new one
    out = disk / "out"
    shutil.copytree(bert_export.out_dir, out)
    before = _tree(out)
    with pytest.raises(DiskFullError) as caught:
        export_folder(bert_dir, out, ExportConfig(max_length=MAX_LENGTH))
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    message = str(caught.value)
    assert message.startswith(f"{out}: cannot write the output, the disk is full (")
    assert "the previous export there is unchanged" in message and "\n" not in message
    assert _names(disk) == ["out"], "staging or temporary files were left on the full disk"
    assert _tree(out) == before


def test_disk_full_on_a_first_export_writes_nothing(bert_dir, small_disk):
    disk = small_disk(64 * 1024)
    with pytest.raises(DiskFullError, match="the disk is full .*nothing was written") as caught:
        export_folder(bert_dir, disk / "out", ExportConfig(max_length=MAX_LENGTH, build_updatable_pipeline=False))
    assert caught.value.errno == errno.ENOSPC
    assert _names(disk) == []


def test_full_temp_folder_is_named_as_the_full_disk(bert_dir, small_disk, tmp_path, monkeypatch):
    """coremltools builds each package in the temp folder first; when that disk is the full one, say so."""
    import gc
    import tempfile

    temp = small_disk(64 * 1024)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # what TMPDIR=<temp> does
    out = tmp_path / "out"
    with pytest.raises(DiskFullError) as caught:
        export_folder(bert_dir, out, ExportConfig(max_length=MAX_LENGTH, build_updatable_pipeline=False))
    message = str(caught.value)
    assert f"the disk holding {temp} is full" in message and "set TMPDIR" in message
    del caught
    gc.collect()  # coremltools deletes its temporary package when the model object goes
    assert _names(temp) == [] and not out.exists()
    assert [n for n in _names(tmp_path) if n.startswith(".")] == []
