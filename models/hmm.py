"""Hidden Markov models: a chain of discrete states, each emitting one observation,

    z_0 ~ Categorical(initial),  z_t | z_{t-1} ~ Categorical(transition[z_{t-1}]),  y_t | z_t ~ emission(z_t)

The graphical model (every sequence of a batch under one plate)::

    z_0 --> z_1 --> z_2 --> ... --> z_{T-1}
     |       |       |                |
     v       v       v                v
    y_0     y_1     y_2      ...    y_{T-1}

with categorical emissions (``emission[z]`` a probability vector) or Gaussian ones
(``Normal(loc[z], scale[z])``). The states sit under ``pyro.markov``, so enumerating them is the forward
algorithm: each step only needs the previous state's dimension, and the cost is O(T K^2).

- :meth:`HMM.log_evidence`: ``log p(y)`` by the forward algorithm in log space, written directly on
  the HMM's tensors: the per-step log-matrices ``log A + log b_t`` are multiplied in the log semiring
  by a balanced tree (``log2 T`` batched ``logsumexp`` products: linear work, log depth), or, for many
  states, by the plain recursion ``alpha_t = logsumexp(alpha_{t-1} + log A) + log b_t``;
- :meth:`HMM.viterbi`: ``argmax_z p(z | y)`` by the max-product recursion with backtracking;
- :meth:`HMM.marginals`: ``p(z_t | y)`` by forward-backward: autograd through the forward algorithm;
- :meth:`HMM.log_evidence_enumerated`: the same ``log p(y)`` by Pyro's enumeration of :meth:`HMM.program`
  (``pyro.vectorized_markov`` under the ``contrib.funsor`` backend), the route the direct one is tested
  against; it costs a fixed ~20 ms of setup per call;
- :func:`hmm_model` and :meth:`HMM.fit`: Dirichlet priors on initial, transition and categorical
  emission rows (Normal and LogNormal priors on Gaussian emission locations and scales), the states
  summed out, fit by ``map``, ``svi`` or ``nuts`` through :func:`ppgen.fit` (learning keeps Pyro's
  enumeration of the program).

The direct routes use the probabilities the program's ``Categorical`` sites use (rows normalized,
clamped to ``[eps, 1 - eps]`` as torch's ``Categorical`` does), so they agree with the enumeration routes
to rounding.

Sequences are ``(T,)`` or a batch ``(N, T)`` of equally long ones (a plate over sequences).
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np
import torch
from pyro.infer import TraceEnum_ELBO
from pyro.ops.indexing import Vindex
from pyroapi import distributions as dist
from pyroapi import infer, pyro, pyro_backend
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Normal as TorchNormal

from ppgen.errors import DataError
from ppgen.models import register

__all__ = ["HMM", "forward", "hmm_model", "hmm_program"]

ENUM = {"enumerate": "parallel"}
TREE_MAX_STATES = 16  # the tree multiplies K x K matrices (K^3 per step): the plain recursion's K^2 wins above
TREE_BLOCK = 2 ** 22  # elements of the largest temporary of one tree product; longer chains go block by block


def forward(log_initial: torch.Tensor, log_transition: torch.Tensor, log_b: torch.Tensor,
            tree: bool | None = None) -> torch.Tensor:
    """``log p(y)`` of each sequence, ``(N,)``, from ``log initial`` ``(K,)``, ``log transition`` ``(K, K)``
    and the emission log-likelihoods ``log_b`` ``(N, T, K)``: the forward algorithm in log space.

    ``tree`` (the default for up to :data:`TREE_MAX_STATES` states): the step matrices
    ``M_t = log A + log b_t`` (``M_t[i, j]``: from state ``i`` to ``j``, emitting ``y_t``) are multiplied in
    the log semiring pairwise, level by level (``log2 T`` batched ``logsumexp`` products, each exact);
    otherwise (or ``tree=False``) the plain recursion, one ``logsumexp`` per step. Both are
    differentiable (the gradient with respect to ``log_b`` is the posterior marginals).
    """
    num_states = log_transition.shape[-1]
    alpha = log_initial + log_b[:, 0]  # (N, K)
    if log_b.shape[1] == 1:
        return alpha.logsumexp(-1)
    if tree is None:
        tree = num_states <= TREE_MAX_STATES
    if not tree:
        for t in range(1, log_b.shape[1]):
            alpha = torch.logsumexp(alpha.unsqueeze(-1) + log_transition, -2) + log_b[:, t]
        return alpha.logsumexp(-1)
    # blocks of steps whose first tree level fits TREE_BLOCK elements; one block for all but huge inputs
    block = max(2, TREE_BLOCK // max(1, log_b.shape[0] * num_states ** 3))
    for start in range(1, log_b.shape[1], block):
        steps = log_transition + log_b[:, start:start + block].unsqueeze(-2)  # (N, S, K, K)
        while steps.shape[1] > 1:
            n = steps.shape[1]
            product = _log_matmul(steps[:, 0:n - 1:2], steps[:, 1:n:2])
            steps = torch.cat([product, steps[:, -1:]], 1) if n % 2 else product
        alpha = torch.logsumexp(alpha.unsqueeze(-1) + steps[:, 0], -2)
    return alpha.logsumexp(-1)


def _log_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(exp(a) @ exp(b))`` over the last two dimensions, exactly (no underflow)."""
    return torch.logsumexp(a.unsqueeze(-1) + b.unsqueeze(-3), -2)


def hmm_program(y: torch.Tensor, initial: torch.Tensor, transition: torch.Tensor, emission, vectorized: bool = False,
                tilt: torch.Tensor | None = None):
    """The chain for a batch ``y`` of shape ``(N, T)``; ``emission(z)`` gives the distribution of
    ``y_t`` given the state. ``vectorized`` needs the ``contrib.funsor`` backend (see :mod:`pyroapi`).
    ``tilt`` ``(N, T, K)``: log-potentials added to the states; at zero, the gradient of the log
    evidence with respect to them is the posterior marginals ``p(z_t = k | y)``."""
    num_sequences, length = y.shape
    if num_sequences == 1:  # one sequence needs no plate (a size-1 plate only adds a dimension)
        sequences, y = contextlib.nullcontext(), y[0]
        tilt = None if tilt is None else tilt[0]
    else:
        sequences = pyro.plate("sequences", num_sequences, dim=-2 if vectorized else -1)
        if tilt is not None and vectorized:
            tilt = tilt.unsqueeze(-3)  # (N, 1, T, K): sequences at dim -2, time at dim -1
    with sequences:
        chain = pyro.vectorized_markov(name="time", size=length, dim=-1) if vectorized else pyro.markov(range(length))
        z = None
        for t in chain:  # vectorized: t = 0, then the index tensors 0..T-2 and 1..T-1 of a whole step
            probs = initial if z is None else Vindex(transition)[..., z, :]
            z = pyro.sample(f"z_{t}", dist.Categorical(probs), infer=ENUM)
            step = y[..., t:t + 1] if vectorized and isinstance(t, int) else y[..., t]  # keep the time axis
            pyro.sample(f"y_{t}", emission(z), obs=step)
            if tilt is not None:  # a factor tilt[t, z_t], as an observed Delta (contrib.funsor has no pyro.factor)
                log_potential = Vindex(tilt)[..., t, z]
                zero = log_potential.new_zeros(log_potential.shape)
                pyro.sample(f"tilt_{t}", dist.Delta(zero, log_density=log_potential), obs=zero)


class HMM:
    """A hidden Markov model with known parameters.

    :param initial: ``(K,)`` distribution of the first state.
    :param transition: ``(K, K)``, row ``i`` the distribution of the next state after state ``i``.
    :param emission: ``(K, V)`` categorical emission probabilities; or give ``loc`` and ``scale``
        ``(K,)`` for Gaussian emissions.

    Example:
        >>> import torch
        >>> hmm = HMM(torch.tensor([0.5, 0.5]), torch.tensor([[0.9, 0.1], [0.1, 0.9]]),
        ...           emission=torch.tensor([[0.8, 0.2], [0.2, 0.8]]))
        >>> y = torch.tensor([0, 0, 1, 1, 1])
        >>> hmm.viterbi(y).tolist()
        [0, 0, 1, 1, 1]
        >>> bool(hmm.marginals(y).sum(-1).allclose(torch.ones(5, dtype=torch.float64)))
        True
    """

    def __init__(self, initial, transition, emission=None, loc=None, scale=None, dtype=torch.float64, device=None):
        as_tensor = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        self.initial, self.transition = as_tensor(initial), as_tensor(transition)
        k = self.initial.shape[-1]
        _check_simplex("initial", self.initial, (k,))
        _check_simplex("transition", self.transition, (k, k))
        if (emission is None) == (loc is None or scale is None):
            raise DataError("give either emission (K, V) categorical probabilities "
                            "or loc and scale (K,) for Gaussian emissions")
        if emission is not None:
            self.emission = as_tensor(emission)
            _check_simplex("emission", self.emission, (k, self.emission.shape[-1]))
        else:
            self.emission, self.loc, self.scale = None, as_tensor(loc), as_tensor(scale)
            for name, value in (("loc", self.loc), ("scale", self.scale)):
                if value.shape != (k,):
                    raise DataError(f"{name} must have shape ({k},) (one per state); got {tuple(value.shape)}")
            if bool((self.scale <= 0).any()):
                raise DataError(f"scale must be positive; got {self.scale.tolist()}")
        self.num_states = k

    def emit(self, z: torch.Tensor):
        """The distribution of an observation given state(s) ``z``."""
        if self.emission is not None:
            return dist.Categorical(Vindex(self.emission)[..., z, :])
        return dist.Normal(Vindex(self.loc)[..., z], Vindex(self.scale)[..., z])

    def program(self, y: torch.Tensor, vectorized: bool = False, tilt: torch.Tensor | None = None):
        """This HMM as a Pyro program on a batch ``y`` ``(N, T)`` (see :func:`hmm_program`)."""
        return hmm_program(y, self.initial, self.transition, self.emit, vectorized, tilt)

    # ---- exact inference --------------------------------------------------------------------
    def log_evidence(self, y) -> torch.Tensor:
        """``log p(y)`` (summed over the sequences of a batch), all state paths summed out."""
        with torch.no_grad():
            return self._log_evidence(self._sequences(y))

    def _log_evidence(self, y: torch.Tensor, tilt: torch.Tensor | None = None,
                      tree: bool | None = None) -> torch.Tensor:
        log_initial, log_transition, log_b = self._log_factors(y, tilt)
        return forward(log_initial, log_transition, log_b, tree=tree).sum()

    def _log_factors(self, y: torch.Tensor, tilt: torch.Tensor | None = None):
        """``log initial`` ``(K,)``, ``log transition`` ``(K, K)`` and the emission log-likelihoods ``(N, T, K)``
        (plus ``tilt``), as the program's sites compute them."""
        log_initial = TorchCategorical(probs=self.initial).logits
        log_transition = TorchCategorical(probs=self.transition).logits
        if self.emission is not None:
            log_b = TorchCategorical(probs=self.emission).logits.T[y]  # (N, T, K)
        else:
            log_b = TorchNormal(self.loc, self.scale).log_prob(y.unsqueeze(-1))
        return log_initial, log_transition, log_b if tilt is None else log_b + tilt

    def log_evidence_enumerated(self, y) -> torch.Tensor:
        """``log p(y)`` by Pyro's enumeration of :meth:`program` (the reference for :meth:`log_evidence`)."""
        with torch.no_grad():
            return self._log_evidence_enumerated(self._sequences(y))

    def _log_evidence_enumerated(self, y: torch.Tensor, tilt: torch.Tensor | None = None) -> torch.Tensor:
        if y.shape[1] < 3:  # vectorized_markov needs three steps or more: the plain pyro.markov chain
            elbo = TraceEnum_ELBO(max_plate_nesting=1)
            loss = elbo.loss if tilt is None else elbo.differentiable_loss
            return -torch.as_tensor(loss(self.program, _no_guide, y, tilt=tilt), dtype=self.initial.dtype,
                                    device=self.initial.device)
        import funsor
        import pyro.contrib.funsor  # noqa: F401  (registers the backend)

        if "jax" in sys.modules:  # once JAX is imported (NumPyro, say) funsor asks whether a value is a jitted
            funsor.set_backend("jax")  # JAX function, which fails until its JAX backend has been loaded once
        funsor.set_backend("torch")
        with pyro_backend("contrib.funsor"):
            elbo = infer.TraceMarkovEnum_ELBO(max_plate_nesting=2)
            return -elbo.differentiable_loss(self.program, _no_guide, y, vectorized=True, tilt=tilt)

    def viterbi(self, y) -> torch.Tensor:
        """The most probable state path ``argmax_z p(z | y)``, shaped like ``y``: the max-product
        recursion ``delta_t = max_i (delta_{t-1}(i) + log A_i.) + log b_t``, then backtracking."""
        single = torch.as_tensor(y).dim() == 1
        with torch.no_grad():
            log_initial, log_transition, log_b = self._log_factors(self._sequences(y))
        delta, pointers = log_initial + log_b[:, 0], []
        for t in range(1, log_b.shape[1]):
            delta, best = (delta.unsqueeze(-1) + log_transition).max(-2)  # best previous state for each state
            delta = delta + log_b[:, t]
            pointers.append(best)
        path = np.empty(log_b.shape[:2], dtype=np.int64)  # backtracking: cheap steps, in numpy
        path[:, -1] = delta.argmax(-1).cpu().numpy()
        rows = np.arange(path.shape[0])
        if pointers:
            pointers = torch.stack(pointers, 1).cpu().numpy()  # (N, T - 1, K)
            for t in range(path.shape[1] - 2, -1, -1):
                path[:, t] = pointers[rows, t, path[:, t + 1]]
        path = torch.as_tensor(path, device=self.initial.device)
        return path[0] if single else path

    def marginals(self, y) -> torch.Tensor:
        """Posterior marginals ``p(z_t = k | y)``, ``(T, K)`` (or ``(N, T, K)``), by forward-backward:
        the backward pass is autograd through the forward algorithm, ``d log p(y) / d tilt_t(k)``."""
        y, single = self._sequences(y), torch.as_tensor(y).dim() == 1
        tilt = self.initial.new_zeros(y.shape + (self.num_states,), requires_grad=True)
        (marginals,) = torch.autograd.grad(self._log_evidence(y, tilt), tilt)
        return marginals[0] if single else marginals

    def sample(self, length: int, num_sequences: int | None = None, seed: int | None = None):
        """``(z, y)``: state paths and observations, ``(length,)`` or ``(num_sequences, length)``."""
        with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
            if seed is not None:
                torch.manual_seed(seed)
            z = torch.multinomial(self.initial, num_sequences or 1, replacement=True)
            states = [z]
            for _ in range(length - 1):
                z = torch.multinomial(self.transition[z], 1).squeeze(-1)
                states.append(z)
            z = torch.stack(states, -1)
            y = self.emit(z).sample()
        return (z, y) if num_sequences else (z[0], y[0])

    # ---- validation -----------------------------------------------------------------------------
    def _sequences(self, y) -> torch.Tensor:
        y = torch.as_tensor(y, device=self.initial.device)
        if y.dim() == 1:
            y = y.unsqueeze(0)
        if y.dim() != 2 or y.shape[1] < 1:
            raise DataError(f"y must be one sequence (T,) or a batch (N, T); got shape {tuple(y.shape)}")
        if self.emission is not None:
            if y.is_floating_point() and bool((y != y.round()).any()):
                raise DataError("y must hold integer symbols for categorical emissions")
            y = y.long()
            bad = (y < 0) | (y >= self.emission.shape[-1])
            if bool(bad.any()):
                raise DataError(f"y holds symbol {int(y[bad][0])}; the emissions take 0..{self.emission.shape[-1] - 1}")
        else:
            y = y.to(self.loc.dtype)
            if not bool(torch.isfinite(y).all()):
                raise DataError("y has NaN/inf values")
        return y


def hmm_model(y, num_states: int = 3, num_categories: int | None = None, concentration: float = 1.0):
    """A Bayesian HMM: initial and transition rows ~ Dirichlet(concentration); categorical emission
    rows ~ Dirichlet (``num_categories`` given) or Gaussian locations ~ Normal(0, 10) and scales ~
    LogNormal(0, 1) (floating ``y``); states summed out by enumeration. ``y``: ``(N, T)`` or ``(T,)``."""
    y = y if y.dim() == 2 else y.unsqueeze(0)
    dtype = torch.get_default_dtype() if not y.is_floating_point() else y.dtype
    ones = torch.ones(num_states, device=y.device, dtype=dtype)
    initial = pyro.sample("initial", dist.Dirichlet(concentration * ones))
    rows = concentration * ones.expand(num_states, num_states)
    transition = pyro.sample("transition", dist.Dirichlet(rows).to_event(1))
    if num_categories is not None:
        rows = ones.new_full((num_states, num_categories), concentration)
        emission = pyro.sample("emission", dist.Dirichlet(rows).to_event(1))
        emit = lambda z: dist.Categorical(Vindex(emission)[..., z, :])  # noqa: E731
    else:
        loc = pyro.sample("loc", dist.Normal(0.0 * ones, 10.0).to_event(1))
        scale = pyro.sample("scale", dist.LogNormal(0.0 * ones, 1.0).to_event(1))
        emit = lambda z: dist.Normal(Vindex(loc)[..., z], Vindex(scale)[..., z])  # noqa: E731
    hmm_program(y, initial, transition, emit)


def _no_guide(*args, **kwargs):
    pass


def _check_simplex(name: str, value: torch.Tensor, shape: tuple) -> None:
    if tuple(value.shape) != shape:
        raise DataError(f"{name} must have shape {shape}; got {tuple(value.shape)}")
    if bool((value < 0).any()) or bool(((value.sum(-1) - 1).abs() > 1e-6).any()):
        raise DataError(f"{name} must hold probabilities summing to 1 along its last axis; "
                        f"sums {value.sum(-1).tolist()}")


def _bundled_sequences() -> dict:
    """20 sequences of 40 symbols from a sticky 3-state HMM over 4 symbols."""
    truth = HMM(initial=[0.6, 0.3, 0.1],
                transition=[[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]],
                emission=[[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.05, 0.05, 0.45, 0.45]])
    _, y = truth.sample(40, num_sequences=20, seed=0)
    return {"y": y.numpy(), "num_states": 3, "num_categories": 4}


register("hmm", data=_bundled_sequences, default_method="map",
         description="Bayesian HMM, Dirichlet rows and categorical emissions, states summed out")(hmm_model)
