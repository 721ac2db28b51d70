"""ppgen: deep generative models as Pyro programs, fit and compared with several inference
algorithms, checked with ArviZ.

    import ppgen
    fit = ppgen.fit("eight_schools", method="nuts")
    fit.summary()
"""
from ppgen.errors import ConfigError, DataError, NotApplicableError, NumericalError, PPGenError, RunFolderError, UnknownNameError
from ppgen import backend  # noqa: F401  (registers the "ppgen-numpyro" pyroapi backend)
from ppgen.nets import import_zuko

import_zuko()  # before anything else imports zuko, which would switch off torch's argument validation
from ppgen import data, inference, models
from ppgen.api import fit
from ppgen.results import Fit, load
from ppgen.predictive import prior_predictive
from ppgen.compare import compare, compare_models

__version__ = "0.1.0"

__all__ = ["fit", "load", "prior_predictive", "Fit", "models", "inference", "ConfigError", "DataError", "UnknownNameError", "NotApplicableError",
           "NumericalError", "RunFolderError", "PPGenError"]
