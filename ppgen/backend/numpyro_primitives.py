"""The ``pyro`` module of the ``"ppgen-numpyro"`` backend: NumPyro's primitives under Pyro's names."""
from numpyro.compat.pyro import clear_param_store, get_param_store, module, param, plate, sample  # noqa: F401
from numpyro.contrib.funsor import config_enumerate, markov  # noqa: F401
from numpyro.primitives import deterministic, factor, subsample  # noqa: F401
