"""Fitting skip-gram word vectors (:mod:`ppgen.models.word2vec`) by MAP or SVI on minibatches of pairs."""
from __future__ import annotations

import numpy as np
import torch
from pyro.infer.autoguide import AutoDelta, AutoNormal, init_to_sample

from ppgen.data.text import Vocabulary
from ppgen.errors import DataError, UnknownNameError
from ppgen.inference.svi import train
from ppgen.models.word2vec import WordVectors, skipgram, unigram_noise

__all__ = ["fit_skipgram"]


def fit_skipgram(pairs, vocab: Vocabulary, *, dim: int = 16, negatives: int = 0, method: str = "map",
                 steps: int = 2000, batch_size: int = 256, lr: float = 0.05, prior_scale: float = 1.0,
                 seed: int = 0, progress: bool = False, device: str | torch.device = "cpu") -> "WordVectors":
    """Fit :func:`skipgram` to ``(n, 2)`` (centre, outside) ``pairs`` by ``"map"`` (point estimate,
    started from a prior draw: at 0 the gradients vanish by symmetry) or ``"svi"`` (mean-field Normal
    guide; its means are returned). The learned tables stay in Pyro's param store."""
    pairs = torch.as_tensor(np.asarray(pairs), device=device)
    V = len(vocab)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype not in (torch.int32, torch.int64):
        raise DataError(f"pairs must be an (n, 2) integer array of (centre, outside) ids, got shape "
                        f"{tuple(pairs.shape)} and dtype {pairs.dtype}")
    if len(pairs) == 0 or pairs.min() < 0 or pairs.max() >= V:
        raise DataError(f"pairs must be a non-empty array of word ids in [0, {V}) (the vocabulary's size)")
    guides = {"map": AutoDelta, "svi": AutoNormal}
    if method not in guides:
        raise UnknownNameError(f"unknown method {method!r} for fit_skipgram; use 'map' or 'svi'")
    data = {"centre": pairs[:, 0], "outside": pairs[:, 1], "vocab_size": V, "dim": dim, "prior_scale": prior_scale,
            "negatives": negatives, "batch_size": min(batch_size, len(pairs))}
    if negatives:
        data["noise"] = unigram_noise(pairs[:, 1], V).to(device)
    guide = guides[method](skipgram, init_loc_fn=init_to_sample)
    losses = train(skipgram, guide, data, steps=steps, lr=lr, seed=seed, progress=progress)
    with torch.no_grad():
        tables = guide.median(**data)
    return WordVectors(tables["centre_vectors"].detach(), vocab, context_vectors=tables["context_vectors"].detach(),
                       losses=losses)
