"""The ``infer`` module of the ``"ppgen-numpyro"`` backend: ``numpyro.compat.infer`` plus ``config_enumerate``.

``config_enumerate`` is NumPyro's (funsor) one, with Pyro's ``default="parallel"``; what ``pyro.infer``
has and NumPyro lacks raises ``NotImplementedError`` (pyroapi's message for a missing name).
"""
from numpyro.compat.infer import HMC, MCMC, NUTS, SVI, JitTrace_ELBO, Trace_ELBO  # noqa: F401
from numpyro.contrib.funsor import config_enumerate  # noqa: F401
