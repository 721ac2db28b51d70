"""The report a user reads: files, an HTML page that renders offline in a real browser, the
``compare`` and ``diagnose`` commands."""
import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyroapi import distributions as dist
from pyroapi import pyro

import ppgen
from ppgen import diagnose, report
from ppgen.arviz_bridge import from_dict
from ppgen.cli import main

POSTERIORDB = Path(__file__).resolve().parents[2] / "shared" / "posteriordb"
PNG = b"\x89PNG\r\n\x1a\n"


def normal_mean(x):
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    x = np.random.default_rng(0).normal(1.5, 1.0, size=20)
    table = ppgen.compare(normal_mean, {"x": x}, methods=["svi", "map", "nuts", "enum"], num_samples=200,
                          num_warmup=100, num_chains=2, steps=300, options={"svi": {"lr": 0.05}, "map": {"lr": 0.05}},
                          progress=False)
    folder = tmp_path_factory.mktemp("report")
    return table, report.write(table, folder)


def test_report_folder_holds_table_plots_and_page(written):
    table, page = written
    folder = page.parent
    for name in ("comparison.csv", "comparison.md", "detail.csv", "reference.csv", "posteriors.png", "errors.png",
                 "ess.png", "losses.png", "rank-nuts.png", "report.html"):
        assert (folder / name).stat().st_size > 0, name
    back = pd.read_csv(folder / "comparison.csv", index_col="run")
    assert list(back.index) == list(table.index) and list(back.columns) == list(table.columns)
    np.testing.assert_allclose(back["wall_s"].to_numpy(), table["wall_s"].to_numpy(dtype=float), equal_nan=True)
    assert table.reference.method == "nuts"  # no better reference than the (only) MCMC run
    html = page.read_text()
    text = re.sub(r"data:image/png;base64,[^']+", "", html)
    assert "<script" not in text and "http" not in text  # readable offline, nothing fetched
    images = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(images) == len(list(folder.glob("*.png")))
    assert all(base64.b64decode(b).startswith(PNG) for b in images)
    rows = re.search(r"<table class='comparison'>.*?</table>", html, re.S).group(0).count("<tr class=")
    assert rows == len(table)
    assert "not applicable" in html and "continuous latent" in html  # enum's row says why


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


PROBE = """<script>window.addEventListener('load', () => {
  const images = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  const rows = document.querySelectorAll('table.comparison tbody tr').length;
  const table = Math.ceil(document.querySelector('table.comparison').getBoundingClientRect().right);
  const page = document.documentElement.scrollWidth;
  document.body.setAttribute('data-probe', JSON.stringify({images, rows, table, page}));
});</script>"""


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(written, tmp_path):
    """Chromium opens the page from disk with the network off, in a 1280-pixel window; a probe
    appended to a copy reports the table's rows, each image's decoded size, and how wide the run
    table and the page are (both must fit the window: no sideways scrolling)."""
    table, page = written
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--window-size=1280,900", "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, f"the page did not finish loading in Chromium; DOM starts {dom[:300]!r}"
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert probe["rows"] == len(table)
    assert probe["table"] <= 1280 and probe["page"] <= 1280, probe
    embedded = [base64.b64decode(b) for b in re.findall(r"src='data:image/png;base64,([^']+)'", page.read_text())]
    sizes = [[True, int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")] for png in embedded]
    assert len(sizes) >= 5 and probe["images"] == sizes  # every plot decoded, at the size its PNG header says


def test_compare_command(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "eight_schools", "--methods", "map,enum", "--steps", "100", "--num-samples", "50",
                 "--lr", "0.05", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| map | map |" in printed and "not applicable" in printed
    assert "reference: the reference registered with model 'eight_schools'" in printed
    assert (out / "report.html").exists() and (out / "comparison.md").read_text().startswith("| run |")
    table = pd.read_csv(out / "comparison.csv", index_col="run")
    assert table.loc["map", "steps"] == 100 and table.loc["enum", "status"] == "not applicable"


@pytest.mark.skipif(not (POSTERIORDB / "eight_schools-eight_schools_noncentered.draws.json.zip").exists(),
                    reason="../shared/posteriordb is not beside the repository")
def test_compare_command_takes_a_posteriordb_draws_file(tmp_path, capsys):
    draws = POSTERIORDB / "eight_schools-eight_schools_noncentered.draws.json.zip"
    assert main(["compare", "eight_schools", "--methods", "map", "--steps", "20", "--num-samples", "20",
                 "--reference", str(draws), "--out", str(tmp_path), "--no-progress"]) == 0
    assert "reference: posteriordb draws (eight_schools-eight_schools_noncentered.draws.json.zip, 10 chains)" in \
        capsys.readouterr().out
    ref = pd.read_csv(tmp_path / "reference.csv", index_col="param")
    assert set(ref.index) == {"mu", "tau"} | {f"theta[{i}]" for i in range(8)}


def test_compare_command_refuses_a_missing_reference(tmp_path, capsys):
    assert main(["compare", "eight_schools", "--methods", "map", "--reference", str(tmp_path / "nope.draws.json.zip"),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "unknown reference" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pair_plot_marks_every_divergence():
    rng = np.random.default_rng(0)
    diverging = np.zeros((2, 50), dtype=bool)
    diverging[0, [3, 17]] = diverging[1, 40] = True
    idata = from_dict({"posterior": {"mu": rng.normal(size=(2, 50)), "tau": rng.gamma(2.0, size=(2, 50)),
                                     "theta": rng.normal(size=(2, 50, 3))},
                       "sample_stats": {"diverging": diverging}}, dims={})
    fig = diagnose._pair(idata)
    panels = [ax for ax in fig.axes if ax.get_visible() and (ax.collections or ax.lines)]
    assert len(panels) == 3  # mu, tau, theta[0]: three pairs
    for ax in panels:
        marked = [line for line in ax.lines if len(line.get_xdata()) == 3]
        assert marked, "a panel without the three divergent draws marked"


def test_diagnose_writes_every_plot(tmp_path, capsys):
    fit = ppgen.fit("eight_schools_centered", method="numpyro-nuts", num_samples=100, num_warmup=100, num_chains=2,
                    progress=False)
    fit.save(tmp_path, plots=False)
    assert main(["diagnose", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for name in ("trace", "rank", "pair", "energy", "ppc"):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG), name
        assert f"{name}: {tmp_path / name}.png" in printed
    svi = ppgen.fit("eight_schools", method="svi", steps=20, num_samples=50, progress=False)
    written = diagnose.plots(svi.to_arviz(), tmp_path / "svi")
    assert "energy" in written["energy"] and isinstance(written["ppc"], Path)  # no sampler energy: said why
