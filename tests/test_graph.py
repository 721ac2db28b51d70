"""Model graphs: ``ppgen graph`` on registered models and a user's file, a run folder's ``model.svg``,
the compare report's figure, and a clear refusal without Graphviz's ``dot``. (conftest seeds every test.)"""
import json
import shutil
import xml.etree.ElementTree as ET

import graphviz
import pyro
import pyro.distributions as dist
import pytest
from torch.distributions import constraints

import ppgen
from ppgen import graph, report
from ppgen.cli import main

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (apt-get install -y graphviz)")

PROGRAM = """
import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints


def coin(flips):
    strength = pyro.param("strength", torch.tensor(2.0), constraint=constraints.positive)
    p = pyro.sample("p", dist.Beta(strength, strength))
    with pyro.plate("flip", len(flips)):
        pyro.sample("obs", dist.Bernoulli(p), obs=flips)
"""
FLIPS = {"flips": [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]}


def parse(path) -> tuple[dict, set, str]:
    """``({node: its ellipse's fill, or None for a plain label}, plate labels, all the text)`` of an SVG."""
    root = ET.parse(path).getroot()
    nodes, plates = {}, set()
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "node":
            ellipse = g.find(f"{SVG}ellipse")
            nodes[g.findtext(f"{SVG}title")] = None if ellipse is None else ellipse.get("fill")
        elif g.get("class") == "cluster":
            plates.add(g.findtext(f"{SVG}text"))
    return nodes, plates, " ".join(t.text for t in root.iter(f"{SVG}text") if t.text)


@pytest.fixture
def coin(tmp_path):
    (tmp_path / "coin.py").write_text(PROGRAM)
    (tmp_path / "flips.json").write_text(json.dumps(FLIPS))
    return f"{tmp_path / 'coin.py'}:coin"


def unplug_dot(monkeypatch):
    """Graphviz's ``dot`` is not there: running it raises what the graphviz package raises then."""
    def missing(cmd, **kwargs):
        raise graphviz.ExecutableNotFound(cmd)

    monkeypatch.setattr(graphviz.backend.execute, "run_check", missing)


@pytest.fixture
def no_dot(monkeypatch):
    unplug_dot(monkeypatch)


@needs_dot
@pytest.mark.parametrize("model, latent, observed, plates, legend", [
    ("eight_schools", ["mu", "tau", "theta_trans"], ["theta", "y"], {"school"}, "tau ~ HalfCauchy"),
    ("gmm", ["weights", "locs", "scales", "z"], ["x"], {"component", "data"}, "z ~ Categorical"),
    ("vae", ["z"], ["x"], {"data"}, "x ~ Bernoulli"),  # a factory: its program is built in prepare
])
def test_graph_draws_sites_plates_and_what_is_observed(model, latent, observed, plates, legend, tmp_path, capsys):
    out = tmp_path / f"{model}.svg"
    assert main(["graph", model, "--out", str(out)]) == 0
    assert f"model graph: {out}" in capsys.readouterr().out
    nodes, labels, text = parse(out)
    assert {n: nodes.get(n) for n in latent + observed} == {**dict.fromkeys(latent, "white"),
                                                             **dict.fromkeys(observed, "gray")}
    assert plates <= labels and legend in text
    assert "$$$" not in text  # a network's weights are left out


@needs_dot
def test_graph_of_a_users_program_shows_its_params(coin, tmp_path):
    out = tmp_path / "coin.svg"
    assert main(["graph", coin, "--data", str(tmp_path / "flips.json"), "--out", str(out)]) == 0
    nodes, labels, text = parse(out)
    assert nodes["p"] == "white" and nodes["obs"] == "gray" and nodes["strength"] is None  # a param: a plain label
    assert labels == {"flip"} and "p ~ Beta" in text and "strength : GreaterThan" in text


@needs_dot
@pytest.mark.parametrize("suffix, starts", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".dot", b"digraph")])
def test_graph_format_follows_the_suffix(coin, tmp_path, suffix, starts):
    problem = ppgen.prepare(coin, FLIPS)
    assert graph.write(problem, tmp_path / f"coin{suffix}").read_bytes().startswith(starts)


def flat_prior_regression(x, y):
    w = pyro.sample("w", dist.ImproperUniform(constraints.real, (), ()))  # a Stan port's flat prior: no sampling
    with pyro.plate("rows", len(x)):
        pyro.sample("y", dist.Normal(w * x, 1.0), obs=y)


def test_graph_of_a_flat_prior_needs_no_prior_draw():
    problem = ppgen.prepare(flat_prior_regression, {"x": [0.0, 1.0, 2.0], "y": [0.1, 0.9, 2.2]})
    source = graph.digraph(problem).source
    assert "w ~ ImproperUniform" in source and "w -> y" in source


def test_graph_without_dot_says_what_to_install(no_dot, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no dot to be found either
    assert main(["graph", "eight_schools", "--out", str(tmp_path / "m.svg")]) == 2
    err = capsys.readouterr().err
    assert "Graphviz's `dot`" in err and "apt install graphviz" in err and "Traceback" not in err
    assert not (tmp_path / "m.svg").exists()
    assert graph.write(ppgen.prepare("eight_schools"), tmp_path / "m.gv").read_text().startswith("digraph")


def test_unknown_graph_format_is_refused(tmp_path, capsys):
    assert main(["graph", "eight_schools", "--out", str(tmp_path / "m.jpg")]) == 2
    assert ".svg, .png, .pdf" in capsys.readouterr().err


def test_run_folder_skips_the_graph_without_dot_and_says_why(coin, no_dot, tmp_path):
    fit = ppgen.fit(coin, FLIPS, method="map", steps=20, num_samples=10, progress=False)
    with pytest.warns(RuntimeWarning, match="model.svg not written"):
        fit.save(tmp_path / "run", checks=True)
    assert "Graphviz's `dot`" in fit.errors["model.svg"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["errors"]["model.svg"] == fit.errors["model.svg"]
    assert (tmp_path / "run" / "summary.csv").exists() and not (tmp_path / "run" / "model.svg").exists()


@needs_dot
def test_fit_command_writes_the_graph_into_the_run_folder(tmp_path):
    out = tmp_path / "run"
    assert main(["fit", "eight_schools", "--method", "map", "--steps", "20", "--num-samples", "10",
                 "--out", str(out), "--no-progress"]) == 0
    nodes, labels, _ = parse(out / "model.svg")
    assert nodes["mu"] == "white" and nodes["y"] == "gray" and "school" in labels


@needs_dot
def test_report_inlines_the_graph_or_says_why_not(coin, tmp_path, monkeypatch):
    table = ppgen.compare(coin, FLIPS, methods=["map"], steps=20, num_samples=10, progress=False)
    page = report.write(table, tmp_path / "report").read_text()
    assert (tmp_path / "report" / "model.svg").exists()
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert "<title>obs</title>" in svg and "http" not in svg  # inline and offline: no namespace addresses
    unplug_dot(monkeypatch)
    with pytest.warns(RuntimeWarning, match="model.svg not written"):
        page = report.write(table, tmp_path / "bare").read_text()
    assert "<svg" not in page and "graph was not drawn" in page and "Graphviz's `dot`" in page
