"""The ``ppgen`` command end to end: list, fit into a run folder, load it back, diagnose."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import ppgen
from ppgen.cli import main


def test_list_names_models_and_methods(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("eight_schools", "gmm", "nuts", "numpyro-nuts", "svi", "enum"):
        assert name in out


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "schools"
    code = main(["fit", "eight_schools", "--method", "numpyro-nuts", "--num-samples", "200", "--num-warmup", "200",
                 "--num-chains", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_fit_writes_a_complete_run_folder(run_folder):
    for name in ("config.json", "metrics.json", "posterior.nc", "summary.csv", "trace.png", "rank.png"):
        assert (run_folder / name).stat().st_size > 0, name
    assert not list(run_folder.glob(".*.tmp")), "temporary files left behind"
    config = json.loads((run_folder / "config.json").read_text())
    assert config["method"] == "numpyro-nuts" and config["seed"] == 0 and "torch" in config["versions"]


def test_run_folder_loads_back(run_folder):
    fit = ppgen.load(run_folder)
    assert fit.method == "numpyro-nuts"
    assert fit.get_samples(group_by_chain=True)["theta"].shape == (2, 200, 8)
    summary = fit.summary()
    assert summary.loc["mu", "r_hat"] < 1.1
    np.testing.assert_allclose(fit.samples["theta"].mean(0).numpy(),
                               summary.loc[[f"theta[{i}]" for i in range(8)], "mean"],
                               atol=2e-3)


def test_diagnose_prints_summary_and_flags(run_folder, capsys):
    assert main(["diagnose", str(run_folder)]) == 0
    out = capsys.readouterr().out
    assert "mu" in out and "r_hat" in out
    assert "[ess_bulk]" in out  # 400 draws in all cannot reach the 400 bulk-ESS bar for every parameter


def test_foreign_run_folder_is_refused(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ppgen.RunFolderError, match="not written by ppgen"):
        ppgen.load(tmp_path)
    (tmp_path / "metrics.json").write_text('{"format": "ppgen-run/1", "meth')
    with pytest.raises(ppgen.RunFolderError, match="truncated"):
        ppgen.load(tmp_path)


def test_bad_input_exits_with_a_clear_message(tmp_path):
    data = tmp_path / "schools.json"
    data.write_text(json.dumps({"J": 8, "sigma": [15, 10, 16, 11, 9, 11, 10, 18], "y": [28, 8, -3, 7, -1, 1, 18]}))
    proc = subprocess.run([sys.executable, "-m", "ppgen", "fit", "eight_schools", "--data", str(data), "--out",
                           str(tmp_path / "run"), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "site 'y'" in proc.stderr and "expected shape (8,)" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_user_model_file(tmp_path):
    model_file = tmp_path / "coin.py"
    model_file.write_text(
        "from pyroapi import pyro, distributions as dist\n"
        "def coin(flips):\n"
        "    p = pyro.sample('p', dist.Beta(1.0, 1.0))\n"
        "    with pyro.plate('flips', len(flips)):\n"
        "        pyro.sample('obs', dist.Bernoulli(p), obs=flips)\n")
    data = tmp_path / "flips.csv"
    data.write_text("flips\n" + "\n".join(["1", "1", "0", "1", "1", "1", "0", "1"]))
    out = tmp_path / "run"
    assert main(["fit", f"{model_file}:coin", "--method", "numpyro-nuts", "--data", str(data), "--num-samples", "1000",
                 "--num-warmup", "300", "--out", str(out), "--no-progress"]) == 0
    fit = ppgen.load(out)
    assert abs(fit.samples["p"].mean().item() - 7 / 10) < 0.03  # Beta(7, 3) posterior mean


def test_run_folder_of_a_model_with_discrete_sites(tmp_path):
    """Discrete draws (constant for observed-out rows) break ArviZ's rank plot: the plots take the
    real-valued parameters that vary, and a run with none still saves."""
    fit = ppgen.fit("sprinkler", method="svi", steps=20, num_samples=50, progress=False)
    fit.save(tmp_path / "sprinkler")
    for name in ("trace.png", "rank.png", "posterior.nc", "metrics.json"):
        assert (tmp_path / "sprinkler" / name).stat().st_size > 0, name

    def coin(y):
        from pyroapi import distributions as dist
        from pyroapi import pyro

        z = pyro.sample("z", dist.Categorical(probs=torch.tensor([0.7, 0.3])), infer={"enumerate": "parallel"})
        with pyro.plate("n", len(y)):
            pyro.sample("y", dist.Normal(2.0 * z, 1.0), obs=y)

    ppgen.fit(coin, {"y": [1.5, 0.3]}, method="enum", num_samples=20, progress=False).save(tmp_path / "coin")
    assert (tmp_path / "coin" / "metrics.json").exists() and not (tmp_path / "coin" / "rank.png").exists()
