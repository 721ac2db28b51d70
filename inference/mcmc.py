"""Markov chain Monte Carlo with Pyro: ``nuts`` (the No-U-Turn sampler) and ``hmc`` (Hamiltonian
Monte Carlo with a fixed trajectory length), both with step size and mass matrix adapted in warmup.

Discrete latents are summed out of the potential energy by enumeration, then sampled from their
exact conditional given each draw (:func:`ppgen.posterior.complete`).

The potential energy is compiled with the PyTorch JIT by default (a trace: about twice the effective
samples per second), once a check before sampling finds the trace faithful (:func:`jit_mismatch`):
the program reads no value of its latents into Python (an ``if mu > 0:``, a ``float(x)``: the trace
would keep one branch), the plain potential gives the same value twice at a point (no Python-side
randomness), and the compiled and the plain potential agree in value and gradient at three points (the
chain's initial values, a small perturbation of them, a draw of Stan's uniform(-2, 2) on the
unconstrained space). Otherwise the kernel samples the plain potential and says why in one line (a
:class:`~ppgen.errors.PPGenWarning` and ``fit.diagnostics["jit"] = "off: <reason>"``; ``"on"`` when
compiled). ``jit=False`` skips compiling and the check; ``jit=True`` insists, raising
:class:`~ppgen.errors.ConfigError` with the reason where the check fails. Initialization tries the prior median (Stan's
uniform(-2, 2) on the unconstrained space where the prior cannot be sampled, :mod:`ppgen.init`),
then Stan's rule at fresh random points, and says when both fail. A subsampled plate takes all
its rows: a minibatch potential would make the sampler's accept step wrong.

With a checkpoint folder, chains run one at a time and each is written when it finishes; a resumed
run starts at the first chain not written.

Each draw's sampler statistics are recorded by the kernel itself (:class:`RecordingNUTS`,
:class:`RecordingHMC`) and named as ArviZ names them (``lp``, ``energy``, ``step_size``, ``n_steps``,
``tree_depth``, ``diverging``, ``acceptance_rate``), so E-BFMI and tree-depth saturation can be checked.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pyro
import torch
from pyro.infer import HMC, MCMC, NUTS
from pyro.infer.mcmc.util import initialize_model
from pyro.ops.integrator import potential_grad
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from ppgen import posterior
from ppgen.errors import ConfigError, NotApplicableError, PPGenWarning
from ppgen.inference import checkpoint as checkpointing
from ppgen.inference import register
from ppgen.inference.options import anything, flag, positive, positive_int, probability
from ppgen.init import init_to_median, init_to_unconstrained_uniform
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit

INIT_STRATEGIES = (init_to_median, init_to_unconstrained_uniform)
KERNEL_OPTIONS = {"jit": flag, "init_strategy": anything, "step_size": positive, "adapt_step_size": flag,
                  "adapt_mass_matrix": flag, "full_mass": anything, "target_accept_prob": probability}
MAX_TREE_DEPTH = 10  # the default of Pyro's and NumPyro's NUTS
LONG_CHAIN = 20  # enumerated discrete sites from which Pyro's NUTS is much slower than NumPyro's (the hint)


# --- the check that a compiled potential energy is the plain one ---------------------------------

_CONVERSIONS = frozenset({"__bool__", "__float__", "__int__", "__index__", "__complex__", "item", "tolist",
                          "numpy", "__array__", "is_nonzero", "equal", "allclose"})


def _library_dirs() -> tuple[str, ...]:
    """Where the libraries live whose own value checks are no concern of the user's program (Pyro
    skips its value-dependent shortcuts while tracing; torch's are argument validation)."""
    dirs = []
    for name in ("torch", "pyro", "pyroapi", "opt_einsum", "funsor", "numpy"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            dirs.append(os.path.dirname(module.__file__) + os.sep)
    return tuple(dirs)


class _LatentReads(TorchFunctionMode):
    """Watches one evaluation of the potential for a value computed from the latents that the
    program turns into a Python value (``if mu > 0``, ``float(x)``, ``x.item()``, ``np.exp(x)``):
    a trace records that value as a constant, so the compiled potential keeps one branch.

    Every tensor computed from a latent (or from another such tensor) is tainted; ``found`` is the
    ``file:line`` of the first conversion of a tainted tensor in code outside the libraries."""

    def __init__(self, latents):
        super().__init__()
        self.tainted = {id(t): t for t in latents}  # strong references: an id is not reused meanwhile
        self.libraries = _library_dirs()
        self.found: str | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not any(isinstance(t, torch.Tensor) and id(t) in self.tainted for t in tree_leaves((args, kwargs))):
            return out
        name = getattr(func, "__name__", "")
        if name in _CONVERSIONS:
            if self.found is None:
                caller = sys._getframe(1)
                if not caller.f_code.co_filename.startswith(self.libraries):
                    self.found = f"{os.path.basename(caller.f_code.co_filename)}:{caller.f_lineno}"
            return out
        written = [args[0]] if args and (name.endswith("_") or name == "__setitem__") else []
        for t in tree_leaves(out) + written + tree_leaves(kwargs.get("out")):
            if isinstance(t, torch.Tensor):
                self.tainted[id(t)] = t
        return out


def _evaluate(potential_fn: Callable, z: dict) -> tuple[torch.Tensor, dict]:
    """The potential energy at ``z`` and its gradient, as the integrator computes them."""
    grads, value = potential_grad(potential_fn, {k: v.detach().clone() for k, v in z.items()})
    return value.detach(), {k: g.detach() for k, g in grads.items()}


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    """Whether ``a`` matches ``b`` up to rounding: the same non-finite entries, the finite ones
    within ``tol`` of the largest entry of ``b`` (a fused kernel sums in another order)."""
    a, b = a.detach().double(), b.detach().double()
    if a.shape != b.shape or not torch.equal(torch.isfinite(a), torch.isfinite(b)):
        return False
    finite = torch.isfinite(b)
    if not finite.any():
        return True
    scale = 1 + float(b[finite].abs().max())
    return float((a[finite] - b[finite]).abs().max()) <= tol * scale


def _check_points(z0: dict) -> list[tuple[str, dict]]:
    """The chain's initial values, a small perturbation of them, and Stan's uniform(-2, 2) on the
    unconstrained space, drawn from a generator of their own (the sampler's random stream is not touched)."""
    gen = torch.Generator().manual_seed(2024)

    def draw(v, fn):
        return fn(v.shape, gen).to(device=v.device, dtype=v.dtype)

    nudged = {k: v + 0.1 * draw(v, lambda s, g: torch.randn(s, generator=g)) for k, v in z0.items()}
    stan = {k: draw(v, lambda s, g: torch.rand(s, generator=g)) * 4 - 2 for k, v in z0.items()}
    return [("the initial values", z0), ("a perturbation of them", nudged), ("a uniform(-2, 2) point", stan)]


def jit_mismatch(compiled: Callable, plain: Callable, z0: dict) -> str | None:
    """Why the compiled potential energy ``compiled`` (Pyro's lazy trace, not yet traced) cannot
    stand in for ``plain``, or ``None`` when it can. ``compiled`` is traced here at ``z0``, the
    chain's initial values on the unconstrained space, as the kernel would trace it; see the module doc."""
    z0 = {k: v.detach() for k, v in z0.items()}
    watched = {k: v.clone().requires_grad_(True) for k, v in z0.items()}
    watch = _LatentReads(watched.values())
    with pyro.validation_enabled(False), watch:  # as traced: validation off
        try:
            plain(watched)
        except Exception as e:  # noqa: BLE001  (the kernel reports it where it evaluates the potential)
            return f"the potential energy fails at the initial values ({type(e).__name__})"
    if watch.found:
        return (f"the program reads a value of its latents into Python at {watch.found} (an if, float(), "
                f".item()): a trace would keep one branch")
    first, again = _evaluate(plain, z0), _evaluate(plain, z0)
    tol = torch.finfo(first[0].dtype).eps ** 0.5 if first[0].is_floating_point() else 1e-6
    if not (_close(first[0], again[0], tol) and all(_close(first[1][k], again[1][k], tol) for k in z0)):
        return ("the potential energy changes between two evaluations at the same point (randomness in the "
                "program: Python's random, NumPy's, torch.rand, ...)")
    trained = [v for _, v in pyro.get_param_store().named_parameters() if v.requires_grad]
    for where, z in _check_points(z0):
        with warnings.catch_warnings():  # the tracer's warnings, and torch.jit.trace's deprecation notice
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*torch.jit.trace", category=DeprecationWarning)
            try:
                value, grads = _evaluate(compiled, z)
            except Exception as e:  # noqa: BLE001  (any failure to trace or to run the trace)
                message = str(e).strip().split("\n")[0][:160]
                return f"the compiled potential energy fails at {where}: {type(e).__name__}: {message}"
            finally:  # Pyro's tracing turns them off while it traces, and not back on where it fails
                for v in trained:
                    v.requires_grad_(True)
        expected, expected_grads = first if z is z0 else _evaluate(plain, z)
        if not _close(value, expected, tol):
            return (f"the compiled potential energy differs from the plain one at {where} "
                    f"({float(value):.6g} vs {float(expected):.6g})")
        bad = [k for k in z0 if not _close(grads[k], expected_grads[k], tol)]
        if bad:
            return f"the compiled gradient differs from the plain one at {where} (site {bad[0]!r})"
    return None


class _Recording:
    """A Pyro HMC kernel that records, for each draw of the sampling stage,

    - ``lp``: minus the potential energy at the draw, ``log p(x, z)`` on the unconstrained space
      (with the Jacobian of the transform), up to a constant;
    - ``energy``: the Hamiltonian ``H = U(z) + r' M^-1 r / 2`` at the start of the draw's trajectory,
      just after the momentum ``r`` is resampled (what E-BFMI compares across draws; the
      integrator keeps H nearly constant along the trajectory);
    - ``step_size``, ``n_steps`` (leapfrog steps), ``diverging`` (the energy error passed the
      divergence threshold);
    - ``acceptance_rate``: the Metropolis acceptance probability (NUTS: its mean over the
      trajectory), recovered exactly from Pyro's running mean ``m_n = m_{n-1} + (a_n - m_{n-1}) / n``.

    The record is returned with :meth:`diagnostics`, which Pyro sends back from every chain, also
    from chains run in subprocesses (where a ``hook_fn`` would record into a copy and lose it).
    """

    STATS = ("lp", "energy", "step_size", "n_steps", "diverging", "acceptance_rate")

    def __init__(self, model, *, jit: bool | None = None, jit_reported: list | None = None, **kwargs):
        """``jit``: ``None`` compiles where :func:`jit_mismatch` finds nothing (and warns why not once,
        in ``jit_reported``, shared by the kernels of one run), ``True`` raises instead, ``False``
        samples the plain potential."""
        super().__init__(model, jit_compile=jit is not False, ignore_jit_warnings=True, **kwargs)
        self._jit, self._jit_reported = jit, [] if jit_reported is None else jit_reported
        self.jit_status = "off: jit=False" if jit is False else "on"

    def _initialize_model_properties(self, model_args, model_kwargs):
        super()._initialize_model_properties(model_args, model_kwargs)  # the lazy trace: the first call traces
        if self._jit is False or not self.initial_params:
            return
        plain = self._plain_potential(model_args, model_kwargs)
        reason = jit_mismatch(self.potential_fn, plain, self.initial_params)
        if reason is None:
            self.jit_status = "on"
            return
        if self._jit:
            raise ConfigError(f"jit=True: the compiled potential energy cannot stand in for the plain one: {reason}; "
                              f"pass jit=False, or leave jit unset to fall back to the plain one by itself")
        self.potential_fn, self.jit_status = plain, f"off: {reason}"
        if multiprocessing.current_process().name == "MainProcess":  # a worker's chain is reported by the run
            report_jit(self.jit_status, self._jit_reported)

    def _plain_potential(self, model_args, model_kwargs) -> Callable:
        """The uncompiled potential energy: that of Pyro's ``_PEMaker`` behind the compiled one, or
        (should Pyro's internals move) a fresh one at the same initial values, the random state kept."""
        maker = getattr(getattr(self.potential_fn, "func", None), "__self__", None)
        if callable(getattr(maker, "_potential_fn", None)):
            return maker._potential_fn
        state = pyro.util.get_rng_state()
        try:
            return initialize_model(self.model, model_args, model_kwargs, transforms=self.transforms,
                                    max_plate_nesting=self._max_plate_nesting, init_strategy=self._init_strategy,
                                    initial_params=self.initial_params)[1]
        finally:
            pyro.util.set_rng_state(state)

    def _reset(self):
        super()._reset()
        self._stats = {name: [] for name in self.STATS}
        self._start_energy = float("nan")

    def _sample_r(self, name):
        r, r_unscaled = super()._sample_r(name)
        self._start_energy = float(self._kinetic_energy(r_unscaled) + self._potential_energy_last)
        return r, r_unscaled

    def sample(self, params):
        mean_before, divergences, step_size = self._mean_accept_prob, len(self._divergences), self.step_size
        params = super().sample(params)
        n = self._t - self._warmup_steps
        if n > 0:
            accept = n * self._mean_accept_prob - (n - 1) * mean_before
            steps = self._steps_taken()
            values = {"lp": -float(self._potential_energy_last), "energy": self._start_energy,
                      "step_size": float(step_size), "n_steps": steps, "tree_depth": steps.bit_length(),
                      "diverging": len(self._divergences) > divergences, "acceptance_rate": min(max(accept, 0.0), 1.0)}
            for name, record in self._stats.items():
                record.append(values[name])
        return params

    def diagnostics(self):
        return {**super().diagnostics(), "sample_stats": self._stats, "jit": self.jit_status}


def report_jit(status: str, reported: list) -> None:
    """Warn, once per run, that the potential energy is not compiled and why."""
    if status.startswith("off: ") and status != "off: jit=False" and status not in reported:
        reported.append(status)
        warnings.warn(f"ppgen: the potential energy is not compiled (JIT), sampling the plain one: {status[5:]}",
                      PPGenWarning, stacklevel=2)


class RecordingHMC(_Recording, HMC):
    """Pyro's :class:`~pyro.infer.HMC`, recording each draw's statistics (:class:`_Recording`)."""

    def _steps_taken(self) -> int:
        return self.num_steps


class RecordingNUTS(_Recording, NUTS):
    """Pyro's :class:`~pyro.infer.NUTS`, recording each draw's statistics (:class:`_Recording`) and
    ``tree_depth``, the number of doublings: a tree of depth d has 2^(d-1) to 2^d - 1 leapfrog steps
    (the last doubling may stop early), so d is the bit length of ``n_steps``, as in Stan."""

    STATS = (*_Recording.STATS, "tree_depth")

    def sample(self, params):
        self._leapfrogs = 0
        return super().sample(params)

    def _build_basetree(self, *args, **kwargs):
        self._leapfrogs += 1  # one leapfrog step per leaf
        return super()._build_basetree(*args, **kwargs)

    def _steps_taken(self) -> int:
        return self._leapfrogs


def sample_chains(config: RunConfig, run: Callable) -> tuple[dict, dict]:
    """``run(num_chains, seed) -> (draws, stats)``, each ``{name: (chains, draws, ...)}``.

    Without a checkpoint folder, one call runs every chain. With one, each chain is a call of its
    own (seed + chain index) whose result is saved when it finishes; saved chains are loaded instead.
    """
    if config.checkpoint_dir is None:
        return run(config.num_chains, config.seed)
    parts = []
    for chain in range(config.num_chains):
        saved = checkpointing.load_chain(Path(config.checkpoint_dir), chain)
        if saved is None:
            with checkpointing.StopRequest() as stop:
                saved = run(1, config.seed + chain)
            checkpointing.save_chain(Path(config.checkpoint_dir), chain, *saved)
            if stop.requested and chain + 1 < config.num_chains:
                raise checkpointing.Interrupted(f"MCMC interrupted after chain {chain + 1} of {config.num_chains}; "
                                                f"finished chains saved in {config.checkpoint_dir}")
        parts.append(saved)
    return ({k: torch.cat([p[0][k] for p in parts]) for k in parts[0][0]},
            {k: torch.cat([p[1][k] for p in parts]) for k in parts[0][1]})


def mcmc_fit(problem: Problem, config: RunConfig, grouped: dict, stats: dict, seconds: float,
             missing: dict | None = None) -> Fit:
    """A :class:`Fit` from draws of the continuous latents grouped by chain, completed with the
    deterministic and discrete sites; ``missing`` says which sampler statistics the method does not
    give and why (kept in ``diagnostics["sample_stats_missing"]``, for ``ppgen diagnose``)."""
    c, d = config.num_chains, config.num_samples
    errors = {}
    with problem.placement():
        draws = {k: v.to(problem.device).reshape((c * d,) + tuple(v.shape[2:])) for k, v in grouped.items()}
        flat = posterior.completed(problem, draws, errors)
    chains = {k: v.reshape((c, d) + tuple(v.shape[1:])) for k, v in flat.items()}
    diagnostics = {"divergences": int(stats["diverging"].sum())}
    if "acceptance_rate" in stats:
        diagnostics["accept_rate"] = stats["acceptance_rate"].float().mean(-1).tolist()
    if "tree_depth" in stats:  # the bar for tree-depth saturation
        diagnostics["max_tree_depth"] = config.options.get("max_tree_depth", MAX_TREE_DEPTH)
    if missing:
        diagnostics["sample_stats_missing"] = dict(missing)
    return Fit(method=config.method, model_name=problem.name, chains=chains, seconds=seconds,
               diagnostics=diagnostics, sample_stats=stats, problem=problem, errors=errors)


def _pyro_run(problem: Problem, config: RunConfig, kernel_cls, jit_statuses: list) -> Callable:
    """``run`` for :func:`sample_chains`; each chain's JIT status is appended to ``jit_statuses``."""
    opts = dict(config.options)
    jit = opts.pop("jit", None)
    strategies = (opts.pop("init_strategy"),) if "init_strategy" in opts else INIT_STRATEGIES
    reported: list = []

    def run(num_chains: int, seed: int) -> tuple[dict, dict]:
        for i, strategy in enumerate(strategies):
            kernel = kernel_cls(problem.enumerated(problem.full_model), max_plate_nesting=problem.max_plate_nesting,
                                jit=jit, jit_reported=reported, init_strategy=strategy, **opts)
            mcmc = MCMC(kernel, num_samples=config.num_samples, warmup_steps=config.num_warmup,
                        num_chains=num_chains, disable_progbar=not config.progress)
            pyro.set_rng_seed(seed)
            try:
                with problem.placement():
                    mcmc.run(**problem.data)
                break
            except RuntimeError as e:
                if "cannot find valid initial params" not in str(e):
                    raise
                if i + 1 == len(strategies):
                    raise NotApplicableError(f"{config.method}: no valid initial values for model {problem.name!r} "
                                             f"after trying {', '.join(s.__name__ for s in strategies)}: "
                                             f"the log density is -inf or NaN at all of them; "
                                             f"check priors and data support") from None
        grouped = {k: v.detach().cpu() for k, v in mcmc.get_samples(group_by_chain=True).items()}
        # each chain's kernel diagnostics (mcmc.diagnostics() would also compute r_hat, which needs >= 4 draws)
        records = [mcmc._diagnostics[chain]["sample_stats"] for chain in range(num_chains)]
        for chain in range(num_chains):
            status = mcmc._diagnostics[chain]["jit"]
            report_jit(status, reported)  # chains run in worker processes report here (the others already did)
            jit_statuses.append(status)
        return grouped, {name: torch.as_tensor(np.array([r[name] for r in records]).reshape(num_chains, -1))
                         for name in kernel.STATS}

    return run


def long_chain_hint(problem: Problem, method: str) -> None:
    """Point a program with a long chain of enumerated discrete sites that also runs on NumPyro at
    ``numpyro-nuts``: Pyro's NUTS re-runs the program's Python for every leapfrog step."""
    found = len(problem.names("discrete"))
    if found >= LONG_CHAIN and "numpyro" in problem.backends:
        sampler = "NUTS" if method == "nuts" else "HMC"
        warnings.warn(f"ppgen: {method}: this chain of {found} enumerated sites is slow in Pyro's {sampler}: "
                      f"numpyro-nuts runs the same program compiled", PPGenWarning, stacklevel=3)


def _run(problem: Problem, config: RunConfig, kernel_cls, missing: dict | None = None) -> Fit:
    long_chain_hint(problem, config.method)
    start = time.perf_counter()
    statuses: list[str] = []
    grouped, stats = sample_chains(config, _pyro_run(problem, config, kernel_cls, statuses))
    fit = mcmc_fit(problem, config, grouped, stats, time.perf_counter() - start, missing)
    if statuses:  # none when every chain was loaded from a checkpoint
        fit.diagnostics["jit"] = next((s for s in statuses if s != "on"), "on")
    return fit


@register("nuts", family="mcmc", options={**KERNEL_OPTIONS, "max_tree_depth": positive_int})
def run_nuts(problem: Problem, config: RunConfig) -> Fit:
    """Pyro's No-U-Turn sampler (adaptive HMC)."""
    return _run(problem, config, RecordingNUTS)


@register("hmc", family="mcmc", options={**KERNEL_OPTIONS, "num_steps": positive_int, "trajectory_length": positive})
def run_hmc(problem: Problem, config: RunConfig) -> Fit:
    """Pyro's Hamiltonian Monte Carlo (trajectory length from ``num_steps`` or ``trajectory_length``)."""
    return _run(problem, config, RecordingHMC,
                {"tree_depth": "HMC runs a fixed number of leapfrog steps (n_steps): it builds no tree"})
