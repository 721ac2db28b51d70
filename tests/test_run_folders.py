"""Run folders that never clobber: a lock keeps a second process out of a folder in use, a complete
run is refused unless forced (and a forced rerun clears the old files), default names are numbered,
a folder ppgen did not write is never cleared. And the CLI's output reads clean: no third-party
warning banners unless --verbose, no progress-bar carriage returns in a log."""
import json
import logging
import os
import socket
import subprocess
import sys
import time
import warnings

import pytest

from ppgen.cli import _quiet, main
from ppgen.errors import PPGenWarning, RunFolderError
from ppgen.runfolder import LOCK, FolderInUse, claimed

QUICK = ["--method", "map", "--steps", "30", "--num-samples", "10", "--no-progress"]


def test_a_folder_in_use_is_refused_and_free_again_afterwards(tmp_path):
    with claimed(tmp_path / "run") as folder:
        holder = json.loads((folder / LOCK).read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(FolderInUse, match=f"in use by process {os.getpid()}"):
            with claimed(folder):
                pass
    assert not (folder / LOCK).exists()
    with pytest.raises(ZeroDivisionError), claimed(folder):  # the lock goes however the block ends
        1 / 0
    assert not (folder / LOCK).exists()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with claimed(folder) as claimed_folder:
        assert json.loads((claimed_folder / LOCK).read_text())["pid"] == os.getpid()


def test_complete_runs_are_refused_unless_forced_and_forcing_clears_old_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", "eight_schools", *QUICK, "--out", str(out)]) == 0
    (out / "pair.png").write_bytes(b"a plot of an earlier run")
    before = (out / "metrics.json").read_bytes()
    assert main(["fit", "eight_schools", *QUICK, "--out", str(out)]) == 2
    assert "already holds a complete run; --force replaces it" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before and (out / "pair.png").exists()
    assert main(["fit", "eight_schools", *QUICK, "--seed", "1", "--out", str(out), "--force"]) == 0
    assert not (out / "pair.png").exists(), "a forced rerun keeps nothing of the old run"
    assert json.loads((out / "config.json").read_text())["seed"] == 1 and not (out / LOCK).exists()


def test_an_interrupted_run_is_refused_with_the_resume_command(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "command.json").write_text("{}")
    with pytest.raises(RunFolderError, match=f"interrupted run .*ppgen fit --resume {folder}"):
        with claimed(folder):
            pass


def test_default_names_are_numbered_instead_of_reused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for expected in ("eight_schools-map", "eight_schools-map-2", "eight_schools-map-3"):
        assert main(["fit", "eight_schools", *QUICK]) == 0
        assert capsys.readouterr().out.strip().endswith(f"run folder: {os.path.join('runs', expected)}")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "eight_schools-map", "eight_schools-map-2", "eight_schools-map-3"]


def test_a_folder_ppgen_did_not_write_is_never_cleared(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    for force in (False, True):
        with pytest.raises(RunFolderError, match="holds files ppgen did not write \\(thesis.tex\\)"):
            with claimed(tmp_path, force=force):
                pass
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_a_refused_start_leaves_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compare", "eight_schools", "--methods", "map", "--reference", str(tmp_path / "none.json"),
                 "--out", str(out), "--no-progress"]) == 2
    assert "unknown reference" in capsys.readouterr().err
    assert not out.exists()


def test_two_concurrent_runs_into_one_folder(tmp_path, capsys):
    """The first run holds the folder: a second `ppgen fit --out` the same folder is refused, naming the
    first's process; the first completes; a third run without --force is refused too."""
    out = tmp_path / "shared"
    first = subprocess.Popen([sys.executable, "-m", "ppgen", "fit", "eight_schools", "--method", "nuts",
                              "--num-warmup", "200", "--num-samples", "200", "--out", str(out), "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / LOCK).exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert main(["fit", "eight_schools", *QUICK, "--out", str(out)]) == 2
    refused = capsys.readouterr().err
    assert first.poll() is None, "the first run should still be running when the second is refused"
    assert f"is in use by process {first.pid}" in refused
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert (out / "metrics.json").exists() and not (out / LOCK).exists()
    assert json.loads((out / "metrics.json").read_text())["method"] == "nuts"
    assert main(["fit", "eight_schools", *QUICK, "--out", str(out)]) == 2
    assert "already holds a complete run" in capsys.readouterr().err


def test_cli_output_has_no_banners_and_no_carriage_returns(tmp_path):
    """A one-chain MAP run makes ArviZ log "Shape validation failed" for r_hat: hidden. Its stderr is a
    pipe, so progress is a line at the start and one at the end, not a redrawn bar."""
    quiet = subprocess.run([sys.executable, "-m", "ppgen", "fit", "eight_schools", "--method", "map", "--steps", "30",
                            "--num-samples", "10", "--out", str(tmp_path / "quiet")],
                           capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "\r" not in quiet.stderr + quiet.stdout and "warning" not in (quiet.stderr + quiet.stdout).lower()
    start, end = quiet.stderr.splitlines()
    assert start == "ppgen: map on eight_schools ..." and end.startswith("ppgen: map on eight_schools: done in ")


@pytest.mark.parametrize("verbose", [False, True])
def test_third_party_warnings_show_only_with_verbose(verbose):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with _quiet(verbose):
            warnings.warn("a library's deprecation banner", FutureWarning)
            warnings.warn("ppgen: a post-fit step failed", PPGenWarning)
            logged = logging.getLogger("a.library").isEnabledFor(logging.WARNING)
    assert [str(w.message) for w in seen] == (["a library's deprecation banner"] if verbose else []) + [
        "ppgen: a post-fit step failed"]
    assert logged == verbose and logging.getLogger("a.library").isEnabledFor(logging.WARNING)  # restored after
