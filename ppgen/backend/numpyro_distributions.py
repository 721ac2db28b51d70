"""The ``distributions`` module of the ``"ppgen-numpyro"`` backend: ``numpyro.distributions`` under Pyro's names.

NumPyro's classes share Pyro's parameterizations; where a shared name takes other arguments, the name
here takes Pyro's: ``ZeroInflatedPoisson(rate, *, gate, gate_logits)`` (NumPyro's takes ``gate`` first),
``ZeroInflatedDistribution`` (Pyro's ``base_dist`` name), ``MixtureSameFamily(mixture_distribution=...)``,
``Independent(base_distribution=...)``, ``LKJ``/``LKJCholesky(dim=...)``,
``Wishart(df, covariance_matrix, precision_matrix, scale_tril)``, ``Unit(log_factor, has_rsample=...)``.
"""
from numpyro import distributions as _d
from numpyro.distributions import *  # noqa: F401, F403


def ZeroInflatedPoisson(rate, *, gate=None, gate_logits=None, validate_args=None):
    return _d.ZeroInflatedDistribution(_d.Poisson(rate), gate=gate, gate_logits=gate_logits,
                                       validate_args=validate_args)


def MixtureSameFamily(mixture_distribution, component_distribution, validate_args=None):
    return _d.MixtureSameFamily(mixture_distribution, component_distribution, validate_args=validate_args)


def Independent(base_distribution, reinterpreted_batch_ndims, validate_args=None):
    return _d.Independent(base_distribution, reinterpreted_batch_ndims, validate_args=validate_args)


def LKJ(dim, concentration=1.0, validate_args=None):
    return _d.LKJ(dim, concentration, validate_args=validate_args)


def LKJCholesky(dim, concentration=1.0, validate_args=None):
    return _d.LKJCholesky(dim, concentration, validate_args=validate_args)


def Wishart(df, covariance_matrix=None, precision_matrix=None, scale_tril=None, validate_args=None):
    return _d.Wishart(df, scale_matrix=covariance_matrix, rate_matrix=precision_matrix, scale_tril=scale_tril,
                      validate_args=validate_args)


def Unit(log_factor, *, has_rsample=None, validate_args=None):
    return _d.Unit(log_factor, validate_args=bool(validate_args))


def ImproperUniform(support, batch_shape, event_shape, validate_args=None):
    """NumPyro's ``ImproperUniform``; a torch constraint (a program that bound ``dist.constraints``
    while Pyro was the backend) is mapped to NumPyro's."""
    return _d.ImproperUniform(numpyro_constraint(support), batch_shape, event_shape, validate_args=validate_args)


def numpyro_constraint(constraint):
    """NumPyro's constraint for a torch one (``real``, ``positive``, bounds, simplex, ...); a NumPyro one as it is."""
    from torch.distributions import constraints as torch_constraints

    c = _d.constraints
    if isinstance(constraint, c.Constraint):
        return constraint
    if isinstance(constraint, torch_constraints.independent):
        return c.independent(numpyro_constraint(constraint.base_constraint), constraint.reinterpreted_batch_ndims)
    named = {torch_constraints.real: c.real, torch_constraints.positive: c.positive,
             torch_constraints.nonnegative: c.nonnegative, torch_constraints.unit_interval: c.unit_interval,
             torch_constraints.simplex: c.simplex, torch_constraints.real_vector: c.real_vector,
             torch_constraints.positive_definite: c.positive_definite,
             torch_constraints.lower_cholesky: c.lower_cholesky, torch_constraints.corr_cholesky: c.corr_cholesky}
    for theirs, ours in named.items():
        if constraint is theirs:
            return ours
    bounded = {torch_constraints.interval: lambda k: c.interval(k.lower_bound, k.upper_bound),
               torch_constraints.half_open_interval: lambda k: c.interval(k.lower_bound, k.upper_bound),
               torch_constraints.greater_than: lambda k: c.greater_than(k.lower_bound),
               torch_constraints.greater_than_eq: lambda k: c.greater_than_eq(k.lower_bound),
               torch_constraints.less_than: lambda k: c.less_than(k.upper_bound)}
    for kind, make in bounded.items():
        if isinstance(constraint, kind):
            return make(constraint)
    raise NotImplementedError(f"the torch constraint {constraint} has no NumPyro counterpart here; "
                              f"use dist.constraints inside the model")
