"""Skip-gram training throughput: ppgen's Pyro program against the same objective in hand-written PyTorch.

One run, one table. On a planted corpus (:func:`ppgen.data.text.planted_corpus` with
``--words-per-class`` words in each of its 6 classes, window 2), pairs per second of MAP training

* ppgen     ``train(skipgram, AutoDelta(skipgram), ...)``: the registered Pyro program through ppgen's
            one SVI loop (minibatch drawn by the plate, prior terms, finiteness check per step);
* PyTorch   the same objective written by hand: two ``(V, d)`` tables, a ``randperm`` minibatch,
            ``-(N/B) sum log softmax(u^T v_c)[o] - log N(v; 0, s^2) - log N(u; 0, s^2)``, Adam;

for the full softmax likelihood (O(V d) per pair) and for negative sampling (``--negatives`` draws
from the unigram^(3/4) distribution, O(k d) per pair). Target: ppgen / PyTorch time <= 1.2. A third
column runs ppgen with Pyro's argument validation off (``pyro.validation_enabled(False)``), which
``ppgen.fit`` needs only on its first, data-checking trace: it shows what the per-step checks cost.
Every cell is the median of ``--repeats`` rounds of ``--steps`` steps, rounds interleaved.

    python bench/word2vec.py                 # about a minute on one CPU core
    python bench/word2vec.py --device cuda --batch 8192
"""
from __future__ import annotations

import argparse
import statistics

import pyro
import torch
import torch.nn.functional as F
from common import elapsed
from pyro.infer.autoguide import AutoDelta, init_to_sample

from ppgen.data.text import Vocabulary, planted_corpus, skipgram_pairs
from ppgen.inference.svi import train
from ppgen.models.word2vec import negative_sampling, skipgram, unigram_noise


class PyTorchSkipGram:
    """The baseline: MAP skip-gram written by hand."""

    def __init__(self, V: int, d: int, prior_scale: float, lr: float, device: torch.device):
        self.v = (prior_scale * torch.randn(V, d, device=device)).requires_grad_()
        self.u = (prior_scale * torch.randn(V, d, device=device)).requires_grad_()
        self.prior = torch.distributions.Normal(torch.zeros((), device=device), prior_scale)
        self.opt = torch.optim.Adam([self.v, self.u], lr=lr)

    def steps(self, centre, outside, batch: int, steps: int, negatives: int, noise) -> list[float]:
        n, losses = len(centre), []
        for _ in range(steps):
            i = torch.randperm(n, device=centre.device)[:batch]
            v_c = self.v[centre[i]]
            if negatives:
                log_lik = negative_sampling(v_c, self.u, outside[i], noise, negatives)
            else:
                log_lik = F.log_softmax(v_c @ self.u.T, -1).gather(-1, outside[i, None]).squeeze(-1)
            loss = -(n / batch) * log_lik.sum() - self.prior.log_prob(self.v).sum() - self.prior.log_prob(self.u).sum()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            losses.append(loss.item())
        return losses


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--words-per-class", type=int, default=100)
    p.add_argument("--sentences", type=int, default=20000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--negatives", type=int, default=5)
    p.add_argument("--steps", type=int, default=50, help="steps per timing round")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    pyro.set_rng_seed(0)

    corpus = planted_corpus(args.sentences, seed=0, words_per_class=args.words_per_class)
    vocab = Vocabulary.build(corpus.sentences)
    pairs = torch.as_tensor(skipgram_pairs(vocab.encode(corpus.sentences), window=2), device=device)
    centre, outside, V = pairs[:, 0], pairs[:, 1], len(vocab)
    noise = unigram_noise(outside, V).to(device)
    lr, scale = 0.05, 1.0

    runs = {}
    for objective, k in (("softmax", 0), (f"negative sampling (k={args.negatives})", args.negatives)):
        data = {"centre": centre, "outside": outside, "vocab_size": V, "dim": args.dim, "prior_scale": scale,
                "negatives": k, "noise": noise, "batch_size": args.batch}
        with pyro.get_param_store().scope():
            guide = AutoDelta(skipgram, init_loc_fn=init_to_sample)
            train(skipgram, guide, data, steps=1, lr=lr, seed=None, progress=False)  # builds the guide
            store = pyro.get_param_store().get_state()
        baseline = PyTorchSkipGram(V, args.dim, scale, lr, device)

        def ppgen_round(data=data, guide=guide, store=store, validate=True):
            with pyro.get_param_store().scope(store), pyro.validation_enabled(validate):
                train(skipgram, guide, data, steps=args.steps, lr=lr, seed=None, progress=False)

        def pytorch_round(baseline=baseline, k=k):
            baseline.steps(centre, outside, args.batch, args.steps, k, noise)

        runs[objective] = {"ppgen": ppgen_round, "unvalidated": lambda f=ppgen_round: f(validate=False),
                           "PyTorch": pytorch_round}
        for fn in runs[objective].values():  # warm up
            fn()

    seconds = {(obj, who): [] for obj in runs for who in runs[obj]}
    for _ in range(args.repeats):
        for obj, fns in runs.items():
            for who, fn in fns.items():
                seconds[obj, who].append(elapsed(fn, device))
    rate = {key: args.steps * args.batch / statistics.median(s) for key, s in seconds.items()}

    print(f"\nskip-gram MAP training pairs per second: V = {V} words, d = {args.dim}, {len(pairs)} pairs, "
          f"batch {args.batch}, Adam, device {device}, {args.threads} thread(s), median of {args.repeats} "
          f"rounds of {args.steps} steps\n")
    print(f"| {'objective':<28} | {'PyTorch pairs/s':>15} | {'ppgen pairs/s':>13} | ppgen time / PyTorch time | "
          f"same, validation off |")
    print(f"|{'-' * 30}|{'-' * 17}|{'-' * 15}|---------------------------|----------------------|")
    for obj in runs:
        ratio, unvalidated = (rate[obj, "PyTorch"] / rate[obj, who] for who in ("ppgen", "unvalidated"))
        print(f"| {obj:<28} | {rate[obj, 'PyTorch']:15,.0f} | {rate[obj, 'ppgen']:13,.0f} | {ratio:25.2f} | "
              f"{unvalidated:20.2f} |")
    print("\ntarget: ppgen time / PyTorch time <= 1.2")


if __name__ == "__main__":
    main()
