"""BIF files in and out (ppgen.bif), state names, pgmpy conversion and the bundled classic networks."""
import functools
import gzip
import logging
import re
from importlib import resources

import numpy as np
import pytest
import torch

import ppgen  # noqa: F401  (binds BayesNet.query, ...)
from ppgen import bif
from ppgen.errors import DataError, UnknownNameError
from ppgen.models.bayesnet import CLASSIC, BayesNet, classic, sprinkler

logging.getLogger("pgmpy").setLevel(logging.ERROR)


@functools.cache
def net(name: str) -> BayesNet:
    return classic(name)


def bundled_text(name: str) -> str:
    return gzip.decompress(resources.files("ppgen.data").joinpath("bnlearn", f"{name}.bif.gz").read_bytes()).decode()


@pytest.fixture(scope="module")
def pgmpy_reader():
    """pgmpy's BIFReader, its pyparsing grammars built once (each reader builds them anew, ~1 s)."""
    from pgmpy.readwrite import BIFReader

    grammars = BIFReader.get_variable_grammar(None), BIFReader.get_probability_grammar(None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BIFReader, "get_variable_grammar", lambda self: grammars[0])
        patch.setattr(BIFReader, "get_probability_grammar", lambda self: grammars[1])
        yield BIFReader


# ---- the classic networks ------------------------------------------------------------------------
@pytest.mark.parametrize("name", CLASSIC)
def test_classic_round_trips_through_bif_and_pgmpy(name, pgmpy_reader):
    bn = net(name)
    assert BayesNet.from_bif(bn.to_bif()) == bn
    assert BayesNet.from_pgmpy(bn.to_pgmpy()) == bn
    assert BayesNet.from_pgmpy(pgmpy_reader(string=bundled_text(name)).get_model()) == bn
    parsed = bif.read(bundled_text(name))
    assert set(parsed.variables) == set(bn.variables)
    assert bn.states == parsed.states and all(isinstance(s, str) for v in bn.states for s in bn.states[v])


def test_bif_files_round_trip_exactly_and_gzipped(tmp_path):
    bn = net("alarm")
    for path in (tmp_path / "alarm.bif", tmp_path / "alarm.bif.gz"):
        bn.to_bif(path)
        back = BayesNet.from_bif(path)
        assert back == bn
        assert all(torch.equal(back.cpts[v], bn.cpts[v]) for v in bn.variables)  # repr floats: exact
    assert gzip.open(tmp_path / "alarm.bif.gz", "rt").read() == bn.to_bif()
    odd = BayesNet({"a": []}, {"a": [1 / 3, 2 / 3]}, states={"a": ["very low", "1/2"]})
    assert BayesNet.from_bif(odd.to_bif()) == odd


def test_state_names_survive_and_evidence_by_name_equals_by_index():
    asia = net("asia")
    assert asia.states["xray"] == ("yes", "no")
    numeric = BayesNet.from_bif("variable n { type discrete [ 2 ] { 3, 4 }; }\nprobability ( n ) { table 0.5, 0.5; }")
    assert numeric.states == {"n": ("3", "4")} and numeric.state_index("n", "4") == 1 == numeric.state_index("n", 1)
    torch.testing.assert_close(asia.query(["lung"], {"xray": "yes"}), asia.query(["lung"], {"xray": 0}))
    torch.testing.assert_close(asia.log_evidence({"xray": "no", "smoke": "yes"}),
                               asia.log_evidence({"xray": 1, "smoke": 0}))
    assert asia.state_index("xray", "no") == 1 == asia.state_index("xray", 1)
    assert sprinkler().states == {"rain": ("0", "1"), "sprinkler": ("0", "1"), "wet": ("0", "1")}
    with pytest.raises(DataError, match="evidence xray='maybe' is not a state of 'xray'; states: yes, no"):
        asia.query(["lung"], {"xray": "maybe"})
    with pytest.raises(DataError, match="'rain' has 2 states .* 3 state names"):
        BayesNet({"rain": []}, {"rain": [0.5, 0.5]}, states={"rain": ["a", "b", "c"]})


def test_batched_evidence():
    asia = net("asia")
    evidence = asia._evidence({"xray": ["yes", "no", 0], "smoke": np.array(["no", "no", "yes"]),
                               "tub": torch.tensor([1, 0, 1]), "asia": "no"})
    assert {v: x.tolist() for v, x in evidence.items()} == {"xray": [0, 1, 0], "smoke": [1, 1, 0], "tub": [1, 0, 1],
                                                            "asia": 1}
    assert all(x.dtype == torch.long for x in evidence.values()) and evidence["asia"].shape == ()
    with pytest.raises(DataError, match="one batch size"):
        asia._evidence({"xray": [0, 1], "smoke": [0, 1, 1]})
    with pytest.raises(DataError, match="evidence xray=2 is out of range: 'xray' takes values 0..1"):
        asia._evidence({"xray": [0, 2]})
    with pytest.raises(DataError, match="evidence xray='maybe' is not a state of 'xray'; states: yes, no"):
        asia._evidence({"xray": ["yes", "maybe"]})
    with pytest.raises(DataError, match="1-D batch"):
        asia._evidence({"xray": [[0, 1]]})


def test_model_is_a_pyro_program_for_fit():
    asia = net("asia")
    fit = ppgen.fit(asia, {"xray": "yes"}, method="enum", num_samples=10, progress=False)
    assert fit.log_evidence == pytest.approx(float(asia.log_evidence({"xray": "yes"})), abs=1e-9)
    with pytest.raises(DataError, match=r"'cloudy' is not in the net; variables: \['asia'"):
        asia.model(cloudy=1)


def test_equality_and_unknown_names():
    parents = {"a": [], "b": [], "c": ["a", "b"]}
    cpts = {"a": [0.3, 0.7], "b": [0.4, 0.6], "c": [[[0.1, 0.9], [0.2, 0.8]], [[0.3, 0.7], [0.4, 0.6]]]}
    bn = BayesNet(parents, cpts)
    swapped = BayesNet({**parents, "c": ["b", "a"]}, {**cpts, "c": np.swapaxes(np.array(cpts["c"]), 0, 1)})
    assert bn == swapped
    assert bn != BayesNet(parents, {**cpts, "a": [0.31, 0.69]})
    assert bn != BayesNet(parents, cpts, states={"a": ["x", "y"]})
    with pytest.raises(TypeError):
        hash(bn)
    with pytest.raises(UnknownNameError, match="'munin'.*asia, cancer, earthquake"):
        classic("munin")


# ---- the parser: formats and errors ------------------------------------------------------------
BASE = """\
network test {
}
variable rain {
  type discrete [ 2 ] { no, yes };
}
variable wet {
  type discrete [ 2 ] { dry, soaked };
}
probability ( rain ) {
  table 0.8, 0.2;
}
probability ( wet | rain ) {
  (no) 0.9, 0.1;
  (yes) 0.2, 0.8;
}
"""


def edit(line: int, new: str | None) -> str:
    """BASE with its (1-based) ``line`` replaced by ``new`` (dropped for None)."""
    lines = BASE.splitlines()
    lines[line - 1:line] = [] if new is None else [new]
    return "\n".join(lines) + "\n"


def test_rows_keyed_by_state_names_in_any_order_default_and_comments():
    text = """\
/* two parents,
   rows in any order */
network "two parents" {
  property author = someone;
}
variable a { type discrete [ 2 ] { a0, a1 }; }
variable b { type discrete [ 3 ] { b0 b1 b2 }; property note = no commas; }
variable c { type discrete [ 2 ] { c0, c1 }; }
probability ( a ) { table 0.5, 0.5; }
probability ( b ) { table 0.2, 0.3, 0.5; }  // a root
probability ( c | b, a ) {
  (b2, a0) 0.1, 0.9;
  (b0, a1) 0.25, 0.75;
  default 0.5, 0.5;
}
"""
    parsed = bif.read(text)
    assert parsed.name == "two parents" and parsed.variables == ("a", "b", "c")
    assert parsed.parents["c"] == ("b", "a") and parsed.tables["c"].shape == (3, 2, 2)
    np.testing.assert_array_equal(parsed.tables["c"][2, 0], [0.1, 0.9])
    np.testing.assert_array_equal(parsed.tables["c"][0, 1], [0.25, 0.75])
    np.testing.assert_array_equal(parsed.tables["c"][1, 1], [0.5, 0.5])
    assert parsed.properties == {"b": ("note = no commas",)} and parsed.network_properties == ("author = someone",)
    again = bif.read(bif.dumps(parsed))
    assert again.properties == parsed.properties and again.network_properties == parsed.network_properties
    table = BASE.replace("  (no) 0.9, 0.1;\n  (yes) 0.2, 0.8;\n", "  table 0.9, 0.2, 0.1, 0.8;\n")
    np.testing.assert_array_equal(bif.read(table).tables["wet"], bif.read(BASE).tables["wet"])  # child slowest
    assert bif.read(edit(14, "  default 0.2, 0.8;")).tables["wet"].tolist() == [[0.9, 0.1], [0.2, 0.8]]


@pytest.mark.parametrize("text, line, pattern", [
    (edit(12, None).replace("  (no) 0.9, 0.1;\n  (yes) 0.2, 0.8;\n}\n", ""), 6, "'wet' has no probability block"),
    (edit(14, "  (yes) 0.2, 0.7;"), 14, r"p\(wet \| rain=yes\) must be non-negative and sum to 1"),
    (edit(10, "  table 0.8, 0.3;"), 10, r"p\(rain\) must be non-negative and sum to 1"),
    (edit(12, "probability ( wet | cloudy ) {"), 12, "parent 'cloudy' of 'wet' is not declared"),
    (edit(13, "  (maybe) 0.9, 0.1;"), 13,
     r"row \(maybe\) of 'wet': 'maybe' is not a state of parent 'rain'; states: no, yes"),
    (edit(13, "  (no) 0.9, 0.05, 0.05;"), 13, r"the row \(no\) of 'wet' has 3 values; expected 2"),
    (edit(13, "  (no, yes) 0.9, 0.1;"), 13, r"names 2 states, one per parent of 'wet': expected 1 \(rain\)"),
    (edit(10, "  table 0.8, 0.1, 0.1;"), 10, "the table of 'rain' has 3 values; expected 2"),
    (edit(13, "  (no) 0.9, abc;"), 13, "expected a probability .* of 'wet', got 'abc'"),
    (edit(7, "  type discrete [ 2 ] { dry, soaked }"), 7, "expected ';' after the states of 'wet', got '}'"),
    (edit(4, "  type discrete [ 3 ] { no, yes };"), 4, "'rain' declares 3 states but lists 2"),
    (edit(14, None), 12, r"the table of 'wet' lacks a row for \(rain=yes\)"),
    (edit(14, "  (no) 0.2, 0.8;"), 14, r"the table of 'wet' gives \(rain=no\) twice \(first on line 13\)"),
    ("/* a comment\n   of two lines */\n" + edit(9, "probability ( rain {"), 11,
     r"expected a parent of 'rain' or '\)', got '\{'"),
])
def test_malformed_files_name_the_variable_and_the_line(text, line, pattern):
    with pytest.raises(DataError) as error:
        bif.read(text)
    message = str(error.value)
    assert f"line {line}:" in message, message
    assert re.search(pattern, message), message
