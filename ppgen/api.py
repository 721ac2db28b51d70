"""``ppgen.fit``: one entry point over every inference method."""
from __future__ import annotations

import pyro
import torch

from ppgen import inference
from ppgen.errors import ConfigError, NotApplicableError, UnknownNameError
from ppgen.problem import Problem, RunConfig, prepare
from ppgen.results import Fit


def fit(model, data: dict | None = None, method: str = "nuts", guide=None, num_samples: int = 1000,
        num_warmup: int = 1000, num_chains: int = 1, steps: int = 2000, seed: int = 0, device="auto",
        dtype: torch.dtype | None = None, progress: bool = True, checkpoint_dir=None, **options) -> Fit:
    """Fit ``model`` to ``data`` with ``method``.

    :param model: a Pyro program taking the data as keyword arguments, a registered name
        (``ppgen.models.names()``), ``"path/to/file.py:function"``, or a :class:`~ppgen.problem.Problem`
        already validated by :func:`~ppgen.problem.prepare` (then ``data``, ``device`` and ``dtype`` are its own).
    :param data: dict of arrays, lists, scalars or tensors (``None``: the model's bundled data).
    :param method: one of ``ppgen.inference.names()``.
    :param guide: for ``svi``/``map``: a guide callable or a guide name (``"normal"``, ``"mvn"``, ...).
    :param num_samples: posterior draws per chain (MCMC) or from the guide (SVI; 0 skips them).
    :param num_warmup: MCMC warmup (adaptation) steps per chain.
    :param steps: optimization steps for ``svi``/``map``.
    :param device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``: where the data and every tensor live.
    :param dtype: floating dtype for array data (default: torch's default dtype).
    :param checkpoint_dir: a folder for long runs: SVI saves its state there every
        ``checkpoint_every`` steps, MCMC each finished chain; a run pointed at a folder that holds
        such state resumes from it. SIGINT/SIGTERM stop cleanly after saving.
    :param options: method-specific options (``lr``, ``elbo``, ``num_particles``, ``clip_norm`` for
        SVI; ``jit``, ``target_accept_prob``, ``max_tree_depth`` for NUTS; ...).

    The model and data are validated together before any fitting (:class:`ppgen.DataError`).
    """
    spec = inference.get(method)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise UnknownNameError(f"method {method!r} takes no option(s) {', '.join(map(repr, unknown))}; "
                               f"its options: {', '.join(spec.options) or 'none'}")
    for name, value, least in (("num_samples", num_samples, 0), ("num_warmup", num_warmup, 0), ("steps", steps, 1),
                               ("num_chains", num_chains, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    for name in ("lr", "clip_norm", "step_size", "trajectory_length"):
        if name in options and not (isinstance(options[name], (int, float)) and options[name] > 0):
            raise ConfigError(f"{name} must be a positive number, got {options[name]!r}")
    for name in ("num_particles", "max_tree_depth", "num_steps", "log_every", "checkpoint_every"):
        if name in options and not (isinstance(options[name], int) and options[name] >= 1):
            raise ConfigError(f"{name} must be a positive integer, got {options[name]!r}")
    if "target_accept_prob" in options and not 0 < options["target_accept_prob"] < 1:
        raise ConfigError(f"target_accept_prob must lie in (0, 1), got {options['target_accept_prob']!r}")
    if isinstance(model, Problem) and data is not None:
        raise ConfigError("a prepared Problem carries its own data: pass data=None")
    pyro.set_rng_seed(seed)  # one seed fixes torch, numpy and Python's RNGs; JAX keys derive from it too
    problem = model if isinstance(model, Problem) else prepare(model, data, device=device, dtype=dtype)
    pyro.set_rng_seed(seed)  # the run starts from the seed, whatever preparing drew (networks, a trace)
    if spec.family == "mcmc" and not problem.names("latent"):
        found = problem.names("discrete")
        hint = (f"its discrete latent(s) {', '.join(found)} are summed out exactly by method='enum'" if found
                else "fit its params with method='map' (maximum likelihood)")
        raise NotApplicableError(f"model {problem.name!r} has no continuous latent for {method} to sample: {hint}")
    config = RunConfig(method=method, guide=guide, num_samples=num_samples, num_warmup=num_warmup,
                       num_chains=num_chains, steps=steps, seed=seed, progress=progress, options=options,
                       checkpoint_dir=checkpoint_dir)
    with pyro.validation_enabled(True):
        result = spec.run(problem, config)
    result.config = {"model": problem.name, "method": method, "num_samples": num_samples, "num_warmup": num_warmup,
                     "num_chains": num_chains, "steps": steps, "seed": seed, "device": str(problem.device),
                     "dtype": str(problem.dtype), "guide": guide if isinstance(guide, str) or guide is None else
                     getattr(guide, "__name__", type(guide).__name__),
                     "options": {k: v if isinstance(v, (int, float, str, bool)) else repr(v) for k, v in options.items()}}
    return result
