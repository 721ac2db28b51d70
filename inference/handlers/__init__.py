"""Effect handlers of the inference engines, one per file: :class:`~ppgen.inference.handlers.shard.Shard`
(one process's rows of a data plate, for data-parallel SVI) and
:class:`~ppgen.inference.handlers.chain_finder.ChainFinder` (stops a diffusion model at its latent chain)."""
