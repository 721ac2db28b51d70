"""Malformed data and settings thrown at ``fit`` for every registered model: the only exceptions
that escape are ppgen's own (each naming what is wrong), and nothing hangs."""
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppgen

SPECS = {spec.name: spec for spec in ppgen.models.specs()}
SECONDS_PER_EXAMPLE = 120


def _mutate(data: dict, key: str, how: str, rng: np.random.Generator) -> dict:
    data = dict(data)
    value = data[key]
    arr = np.asarray(value) if value is not None and not isinstance(value, str) else None
    if how == "drop":
        del data[key]
    elif how == "extra":
        data[key + "_extra"] = value
    elif how == "truncate" and arr is not None and arr.ndim:
        data[key] = arr[: max(len(arr) - 1, 0)]
    elif how == "nan" and arr is not None:
        arr = arr.astype(float).copy()
        arr.flat[rng.integers(arr.size) if arr.size else 0:][:1] = np.nan
        data[key] = arr
    elif how == "negative" and arr is not None:
        data[key] = -np.abs(arr.astype(float)) - 1.5
    elif how == "string":
        data[key] = "not an array"
    elif how == "ragged":
        data[key] = [[1.0, 2.0], [3.0]]
    elif how == "flatten" and arr is not None and arr.ndim >= 2:
        data[key] = arr.reshape(-1)
    elif how == "add_axis" and arr is not None:
        data[key] = arr[..., None]
    elif how == "none":
        data[key] = None
    return data


MUTATIONS = ["drop", "extra", "truncate", "nan", "negative", "string", "ragged", "flatten", "add_axis", "none"]
BAD_SETTINGS = [
    {}, {"num_samples": -1}, {"steps": 0}, {"num_chains": 0}, {"lr": -0.1}, {"lr": "fast"}, {"no_such_option": 1},
    {"num_particles": 0}, {"target_accept_prob": 1.5}, {"guide": "no_such_guide"}, {"device": "tpu"},
    {"method": "no_such_method"},
]


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang(f"fit took longer than {SECONDS_PER_EXAMPLE} s")


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(name=st.sampled_from(sorted(SPECS)), how=st.sampled_from(MUTATIONS), setting=st.sampled_from(BAD_SETTINGS),
       pick=st.integers(0, 10**6))
def test_malformed_input_raises_only_ppgen_errors(name, how, setting, pick):
    spec = SPECS[name]
    data = spec.data()
    key = sorted(data)[pick % len(data)]
    bad = _mutate(data, key, how, np.random.default_rng(pick))
    kwargs = dict(method=spec.default_method, num_samples=2, num_warmup=2, steps=2, progress=False)
    kwargs.update(setting)
    if setting.get("guide") and kwargs["method"] not in ("svi", "map"):
        kwargs["method"] = "svi"
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS_PER_EXAMPLE)
    try:
        ppgen.fit(name, bad, **kwargs)
    except ppgen.PPGenError as e:
        assert str(e), "a ppgen error must say what is wrong"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("setting", BAD_SETTINGS[1:])
def test_each_bad_setting_is_refused_before_fitting(setting):
    kwargs = dict(method="svi", steps=2, num_samples=2, progress=False)
    kwargs.update(setting)
    with pytest.raises(ppgen.PPGenError):
        ppgen.fit("eight_schools", **kwargs)
