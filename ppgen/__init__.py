"""ppgen: deep generative models as Pyro programs, fit and compared with several inference
algorithms, checked with ArviZ.

    import ppgen
    fit = ppgen.fit("eight_schools", method="nuts")
    fit.summary()

The package is built in four layers, each importing only the ones below it: the core (this folder:
problems, specs, data, devices, networks, results, posterior re-evaluation, the ArviZ bridge, run
folders), :mod:`ppgen.models` (generative programs), :mod:`ppgen.inference` (engines and procedures)
and the front door (:mod:`ppgen.api`, :mod:`ppgen.compare`, :mod:`ppgen.cli`, reports, and
:mod:`ppgen.estimators`, which binds the estimator conveniences onto model classes).
"""
from ppgen.errors import (
                          ConfigError,
                          DataError,
                          NotApplicableError,
                          NumericalError,
                          PPGenError,
                          RunFolderError,
                          UnknownNameError,
)
from ppgen.nets import import_zuko

import_zuko()  # before anything else imports zuko, which would switch off torch's argument validation

from ppgen import (  # noqa: E402
                          backend,  # noqa: E402,F401  (registers the "ppgen-numpyro" pyroapi backend)
                          data,
                          estimators,  # noqa: E402,F401  (binds BayesNet.query, NaiveBayes.fit, ... onto the model classes)
                          inference,
                          models,
)
from ppgen.api import fit, prepare, prior_predictive  # noqa: E402
from ppgen.compare import compare  # noqa: E402
from ppgen.model_comparison import compare_models  # noqa: E402
from ppgen.results import Fit, load  # noqa: E402
from ppgen.sbc import sbc  # noqa: E402

__version__ = "0.1.0"

__all__ = ["fit", "prepare", "load", "prior_predictive", "compare", "compare_models", "sbc", "Fit", "data", "models",
           "inference", "ConfigError", "DataError", "UnknownNameError", "NotApplicableError", "NumericalError",
           "RunFolderError", "PPGenError"]
