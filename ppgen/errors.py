"""ppgen's own exceptions: every error a user can cause before any compute is spent is one of these."""


class PPGenError(Exception):
    """Base class of ppgen's errors."""


class DataError(PPGenError, ValueError):
    """The data does not fit the model: a missing or extra key, a shape, a dtype, a value outside
    the support, a NaN. The message names the site, what was expected and what was given."""


class UnknownNameError(PPGenError, ValueError):
    """An unknown model, method or option name; the message lists the known ones."""


class ConfigError(PPGenError, ValueError):
    """A setting out of range (a negative number of draws, a learning rate <= 0, ...)."""


class NotApplicableError(PPGenError, ValueError):
    """A method cannot run this model (e.g. ``enum`` on a model with continuous latents)."""


class RunFolderError(PPGenError, ValueError):
    """A run folder is missing files, truncated, or was not written by ppgen."""


class NumericalError(PPGenError, FloatingPointError):
    """A loss or gradient became NaN/inf during fitting. ``step`` is where, ``sites`` which params
    had bad gradients; the param store still holds the last good values."""

    def __init__(self, message: str, step: int, sites: tuple[str, ...] = ()):
        super().__init__(message)
        self.step = step
        self.sites = sites


class PPGenWarning(RuntimeWarning):
    """A warning of ppgen's own (a post-fit step that failed, a reference that gave nothing): the CLI
    shows these and hides third-party banners unless ``--verbose``."""


def record_failure(errors: dict, step: str, error: Exception, what: str) -> None:
    """Keep a post-fit failure as ``errors[step]`` (its message without the trace-shape table Pyro
    appends) and warn ``ppgen: {what}: {message}``: the fit's draws survive whatever failed."""
    import warnings

    errors[step] = f"{type(error).__name__}: {error}".split("\nTrace Shapes:")[0]
    warnings.warn(f"ppgen: {what}: {errors[step]}", PPGenWarning, stacklevel=3)
