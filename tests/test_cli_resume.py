"""`ppgen fit` stopped by SIGINT mid-run and continued with `ppgen fit --resume DIR` ends where an
uninterrupted run with the same seed ends: bit-identical SVI parameters, losses and draws on the CPU;
MCMC keeps its finished chain and runs the next."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

import ppgen
from ppgen.cli import main

# sized so that the interrupt lands mid-run with room to spare: SVI checkpoints every 100 steps and is
# stopped just after the first; a NUTS chain of 150 + 150 still runs for several seconds after the
# run folder appears (the interrupt comes 1 s after)
SVI_STEPS = 1000
RUNS = {
    "svi": ["--method", "svi", "--steps", str(SVI_STEPS), "--num-samples", "100"],
    "nuts": ["--method", "nuts", "--num-chains", "2", "--num-warmup", "150", "--num-samples", "150"],
}


def _ppgen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ppgen", "fit", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _interrupt_when(proc: subprocess.Popen, started, timeout: float = 120) -> tuple[int, str]:
    """Send SIGINT once ``started()`` holds (the run is past its first checkpoint), then wait."""
    deadline = time.monotonic() + timeout
    while not started() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.mark.parametrize("method", list(RUNS))
def test_interrupted_cli_run_resumes_to_the_uninterrupted_result(tmp_path, method):
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    uninterrupted = _ppgen("eight_schools", *RUNS[method], "--out", str(whole))
    if method == "svi":  # SIGINT once the first checkpoint is written: the loop saves and stops at the next step
        started = (stopped / "checkpoint" / "checkpoint.pt").exists
    else:  # SIGINT while chain 0 runs: it finishes, is saved, and the run stops before chain 1
        began = []
        started = lambda: (stopped / "command.json").exists() and (began.append(time.monotonic()) or
                                                                   time.monotonic() - began[0] > 1.0)
    code, err = _interrupt_when(_ppgen("eight_schools", *RUNS[method], "--out", str(stopped)), started)
    assert code == 130, err
    assert f"ppgen fit --resume {stopped}" in err
    assert not (stopped / "metrics.json").exists(), "an interrupted run folder must not look complete"
    if method == "svi":
        done = torch.load(stopped / "checkpoint" / "checkpoint.pt", weights_only=False)["step"]
        assert 0 < done < SVI_STEPS, f"the interrupt should land mid-run, not at step {done}"
    else:
        assert sorted(p.name for p in (stopped / "checkpoint" / "chains").glob("*.pt")) == ["chain_0.pt"]

    resumed = subprocess.run([sys.executable, "-m", "ppgen", "fit", "--resume", str(stopped), "--no-progress"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()

    a, b = ppgen.load(stopped), ppgen.load(whole)
    assert a.chains.keys() == b.chains.keys()
    for site in a.chains:
        assert torch.equal(a.chains[site], b.chains[site]), site
    if method == "svi":
        assert a.losses == b.losses
        assert a.params.keys() == b.params.keys()
        for name in a.params:
            assert torch.equal(a.params[name], b.params[name]), name
    assert not (stopped / "checkpoint").exists(), "a complete run folder drops its checkpoint"
    config = json.loads((stopped / "config.json").read_text())
    assert config["seed"] == 0 and config["method"] == method


def test_resume_needs_a_started_run_and_leaves_a_complete_one_alone(tmp_path, capsys):
    assert main(["fit", "--resume", str(tmp_path / "nothing")]) == 2
    assert "command.json" in capsys.readouterr().err
    assert main(["fit", "eight_schools", "--resume", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["fit"]) == 2
    assert "needs a model" in capsys.readouterr().err

    out = tmp_path / "done"
    assert main(["fit", "eight_schools", "--method", "map", "--steps", "50", "--num-samples", "10", "--out", str(out),
                 "--no-progress"]) == 0
    before = (out / "metrics.json").read_bytes()
    assert main(["fit", "--resume", str(out)]) == 0
    assert "already complete" in capsys.readouterr().out
    assert (out / "metrics.json").read_bytes() == before
