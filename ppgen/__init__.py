"""ppgen: deep generative models as Pyro programs, fit and compared with several inference
algorithms, checked with ArviZ.

    import ppgen
    fit = ppgen.fit("eight_schools", method="nuts")
    fit.summary()
"""
from ppgen.errors import DataError, NotApplicableError, NumericalError, PPGenError, RunFolderError, UnknownNameError
from ppgen import backend  # noqa: F401  (registers the "ppgen-numpyro" pyroapi backend)
from ppgen import inference, models
from ppgen.api import fit
from ppgen.results import Fit, load

__version__ = "0.1.0"

__all__ = ["fit", "load", "Fit", "models", "inference", "DataError", "UnknownNameError", "NotApplicableError",
           "NumericalError", "RunFolderError", "PPGenError"]
