"""Scaling on this machine: data-parallel SVI in 1 and 2 processes, MCMC in 1 and 2 chains, the
compiled ELBO, and with ``--device cuda`` VAE and diffusion training on the GPU against the CPU.
Every rate is a ratio against a baseline measured in the same run.

* SVI, data-parallel (:mod:`ppgen.inference.distributed`): ``ppgen.fit(..., method="svi")`` under
  ``torchrun --nproc_per_node P``, each process on N / P rows, gradients all-reduced (gloo); rate in
  full-data steps per second, timed inside the fit after a warm-up. Baseline: one process, one
  thread; beside it one process with P threads (what the same cores give without processes).
  Models: Bayesian logistic regression (N rows, D features, global weights) and the registered VAE
  on the 8x8 digits (all 1437 training images per step).
* MCMC: eight schools, post-warm-up draws per second of the whole run (warm-up included; for
  NumPyro the second of two identical runs, the first having compiled).
  Pyro's NUTS: 1 chain; 2 chains in one process (Pyro runs them one after the other when it
  cannot spare a core per chain); 2 chains in 2 processes (one chain each, started together).
  NumPyro's NUTS: 1 chain; 2 chains ``sequential``, ``parallel`` (over two XLA host devices:
  ``numpyro.set_host_device_count(2)`` before JAX starts) and ``vectorized`` (one vmapped chain).
* JIT: SVI steps per second with ``elbo="jit"`` (``JitTrace_ELBO``) against ``"trace"``, and
  ``JitTraceEnum_ELBO`` against ``TraceEnum_ELBO`` for the mixture (discrete z summed out).
* ``--device cuda``: images per second of VAE training (28x28 digits, MLP 784-512-16, batches
  of 512) and of diffusion training (8x8 digits, T=1000, eps-MLP 3x512, fast ELBO, batches of
  1024) through ppgen's loop, on the GPU against the CPU (all its cores).

    python bench/scale.py                    # about three minutes on two cores
    python bench/scale.py --device cuda      # adds the GPU rows
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = "--worker" in sys.argv
if not WORKER:  # NumPyro's chain_method="parallel" needs XLA to see two host devices, set before JAX starts
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count=2 {os.environ.get('XLA_FLAGS', '')}"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402
import torch  # noqa: E402
from common import elapsed  # noqa: E402

import ppgen  # noqa: E402
from ppgen.device import resolve_device  # noqa: E402

HERE = Path(__file__).resolve()


def logistic(x, y):
    """w ~ N(0, I), y_i ~ Bernoulli(sigmoid(x_i . w)): global weights only."""
    w = pyro.sample("w", dist.Normal(x.new_zeros(()), 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", len(x)) as idx:
        pyro.sample("y", dist.Bernoulli(logits=x[idx] @ w), obs=y[idx])


def logistic_data(n: int, d: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = torch.bernoulli(torch.sigmoid(x @ torch.randn(d, generator=g)), generator=g)
    return {"x": x, "y": y}


def svi_rate(model, data, steps: int, warmup: int, **options) -> float:
    """Steps per second of ``ppgen.fit(model, data, method="svi")`` after ``warmup`` steps."""
    stamps = []
    ppgen.fit(model, data, method="svi", steps=warmup + steps, num_samples=0, progress=False, device="cpu",
              log_every=1, callback=lambda step, loss: stamps.append((step, time.perf_counter())), **options)
    (s0, t0), (s1, t1) = stamps[warmup - 1], stamps[-1]
    return (s1 - s0) / (t1 - t0)


# --------------------------------------------------------------------------------------- workers

def svi_worker(args) -> None:
    """One process of a (possibly distributed) SVI fit; rank 0 writes its rate to ``args.out``."""
    torch.set_num_threads(args.threads)
    if args.model == "logistic":
        rate = svi_rate(logistic, logistic_data(args.rows, args.features), args.steps, args.warmup)
    else:
        rate = svi_rate("vae", None, args.steps, args.warmup, lr=1e-3)
    if int(os.environ.get("RANK", 0)) == 0:
        Path(args.out).write_text(json.dumps({"rate": rate}))


def nuts_worker(args) -> None:
    torch.set_num_threads(1)
    fit = ppgen.fit("eight_schools", method="nuts", num_chains=args.chains, num_samples=args.samples,
                    num_warmup=args.samples, seed=args.seed, progress=False, device="cpu")
    Path(args.out).write_text(json.dumps({"seconds": fit.seconds}))


def run_svi(model: str, processes: int, threads: int, args) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rate.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               str(HERE), "--worker", "svi", "--model", model, "--threads", str(threads), "--out", str(out),
               "--steps", str(args.svi_steps), "--warmup", "10", "--rows", str(args.rows),
               "--features", str(args.features)]
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, capture_output=True)
        return json.loads(out.read_text())["rate"]


def pyro_chains_in_processes(processes: int, samples: int) -> float:
    """Draws per second of ``processes`` one-chain NUTS runs started together (seeds 0, 1, ...)."""
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"chain{i}.json" for i in range(processes)]
        procs = [subprocess.Popen([sys.executable, str(HERE), "--worker", "nuts", "--chains", "1", "--seed", str(i),
                                   "--samples", str(samples), "--out", str(out)],
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
                 for i, out in enumerate(outs)]
        start = time.perf_counter()
        for p in procs:
            if p.wait():
                raise RuntimeError("a NUTS worker failed")
        wall = time.perf_counter() - start  # includes each process's start-up (imports): reported separately
        seconds = max(json.loads(o.read_text())["seconds"] for o in outs)
    return processes * samples / seconds, processes * samples / wall


# ------------------------------------------------------------------------------------------ rows

def svi_rows(args) -> list:
    rows = []
    for model, label in (("logistic", f"logistic regression N={args.rows} D={args.features}"),
                         ("vae", "VAE, 1437 digits per step")):
        base = run_svi(model, 1, 1, args)
        rows.append(("SVI data-parallel", label, "1 process, 1 thread", base, "steps/s", 1.0))
        threaded = run_svi(model, 1, 2, args)
        rows.append(("SVI data-parallel", label, "1 process, 2 threads", threaded, "steps/s", threaded / base))
        parallel = run_svi(model, 2, 1, args)
        rows.append(("SVI data-parallel", label, "2 processes (gloo), 1 thread each", parallel, "steps/s",
                     parallel / base))
    return rows


def mcmc_rows(args) -> list:
    n = args.mcmc_samples
    torch.set_num_threads(1)
    common = dict(num_samples=n, num_warmup=n, progress=False, device="cpu", seed=0)
    rows = []
    one = n / ppgen.fit("eight_schools", method="nuts", num_chains=1, **common).seconds
    rows.append(("MCMC Pyro NUTS", "eight schools", "1 chain", one, "draws/s", 1.0))
    two = 2 * n / ppgen.fit("eight_schools", method="nuts", num_chains=2, **common).seconds
    rows.append(("MCMC Pyro NUTS", "eight schools", "2 chains, one MCMC call", two, "draws/s", two / one))
    inside, wall = pyro_chains_in_processes(2, n)
    rows.append(("MCMC Pyro NUTS", "eight schools", "2 chains, 2 processes", inside, "draws/s", inside / one))
    rows.append(("MCMC Pyro NUTS", "eight schools", "  the same, with process start-up", wall, "draws/s", wall / one))
    def numpyro_rate(chains: int, chain_method: str) -> float:
        """Draws per second of the second of two identical runs (the first compiles)."""
        fits = [ppgen.fit("eight_schools", method="numpyro-nuts", num_chains=chains, chain_method=chain_method,
                          **common)
                for _ in range(2)]
        return chains * n / fits[1].seconds

    one = numpyro_rate(1, "sequential")
    rows.append(("MCMC NumPyro NUTS", "eight schools (compiled)", "1 chain", one, "draws/s", 1.0))
    for chain_method in ("sequential", "parallel", "vectorized"):
        rate = numpyro_rate(2, chain_method)
        rows.append(("MCMC NumPyro NUTS", "eight schools (compiled)", f"2 chains, {chain_method}", rate, "draws/s",
                     rate / one))
    return rows


def jit_rows(args) -> list:
    from pyro.infer import JitTraceEnum_ELBO, TraceEnum_ELBO

    torch.set_num_threads(1)
    rows, steps = [], args.jit_steps
    base = svi_rate("eight_schools", None, steps, 20, elbo="trace")
    rows.append(("JIT", "eight schools SVI", 'elbo="trace"', base, "steps/s", 1.0))
    jit = svi_rate("eight_schools", None, steps, 20, elbo="jit")
    rows.append(("JIT", "eight schools SVI", 'elbo="jit" (JitTrace_ELBO)', jit, "steps/s", jit / base))
    base = svi_rate("gmm", None, steps, 20, elbo=TraceEnum_ELBO(max_plate_nesting=1))
    rows.append(("JIT", "mixture SVI, z enumerated", "TraceEnum_ELBO", base, "steps/s", 1.0))
    jit = svi_rate("gmm", None, steps, 20, elbo=JitTraceEnum_ELBO(max_plate_nesting=1, ignore_jit_warnings=True))
    rows.append(("JIT", "mixture SVI, z enumerated", "JitTraceEnum_ELBO", jit, "steps/s", jit / base))
    return rows


def gpu_rows(args) -> list:
    import torch.nn.functional as F

    import ppgen.inference.diffusion_elbo  # noqa: F401  (registers elbo="diffusion")
    from ppgen.data.images import load_digits
    from ppgen.inference.svi import train
    from ppgen.models.diffusion import Diffusion, linear_schedule
    from ppgen.models.vae import VAE

    digits = torch.as_tensor(load_digits(binarize=False).x_train)
    big = (F.interpolate(digits.reshape(-1, 1, 8, 8), size=(28, 28),
                         mode="bilinear").reshape(len(digits), -1) > 0.5).float()
    noisy = digits * 2 - 1  # diffusion on [-1, 1]

    def images_per_second(device: torch.device, which: str) -> float:
        if which == "vae":
            net, x, batch, elbo = VAE(784, 16, (512,), name=f"scale_vae_{device.type}").to(device), big, 512, "trace"
        else:
            net, x, batch, elbo = (Diffusion(64, linear_schedule(1000), hidden=(512, 512, 512),
                                             name=f"scale_ddpm_{device.type}")
                                   .to(device), noisy, 1024, "diffusion")
        data = {"x": x.to(device), "batch_size": batch}
        run = lambda steps: train(net.model, net.guide, data, steps=steps, lr=1e-3, elbo=elbo, seed=None,  # noqa: E731
                                  progress=False)
        run(10)  # warm-up: kernels, allocator, Adam state
        return args.gpu_steps * batch / elapsed(lambda: run(args.gpu_steps), device)

    torch.set_num_threads(os.cpu_count())
    rows = []
    for which, label in (("vae", "VAE 28x28, batch 512"), ("diffusion", "DDPM 8x8 T=1000, batch 1024")):
        cpu = images_per_second(torch.device("cpu"), which)
        rows.append(("GPU vs CPU", label, f"cpu ({os.cpu_count()} threads)", cpu, "images/s", 1.0))
        gpu = images_per_second(torch.device(args.device), which)
        rows.append(("GPU vs CPU", label, args.device, gpu, "images/s", gpu / cpu))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N to add the GPU rows")
    p.add_argument("--sections", default="svi,mcmc,jit,gpu", help="comma-separated: svi, mcmc, jit, gpu")
    p.add_argument("--rows", type=int, default=200_000, help="rows of the logistic regression")
    p.add_argument("--features", type=int, default=32, help="features of the logistic regression")
    p.add_argument("--svi-steps", type=int, default=60)
    p.add_argument("--mcmc-samples", type=int, default=500, help="draws (and warm-up steps) per chain")
    p.add_argument("--jit-steps", type=int, default=400)
    p.add_argument("--gpu-steps", type=int, default=100)
    # worker mode (started by this script)
    p.add_argument("--worker", choices=("svi", "nuts"))
    p.add_argument("--model", default="logistic")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--chains", type=int, default=1)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    args = p.parse_args()
    if args.worker:
        return {"svi": svi_worker, "nuts": nuts_worker}[args.worker](args)

    sections = args.sections.split(",")
    rows = []
    for name, make in (("svi", svi_rows), ("mcmc", mcmc_rows), ("jit", jit_rows)):
        if name in sections:
            rows += make(args)
    if "gpu" in sections and args.device != "cpu":
        resolve_device(args.device)  # a clear error when CUDA is absent
        rows += gpu_rows(args)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{os.cpu_count()} CPU cores (load average {load}: other work shares them); torch {torch.__version__}; "
          f"device {args.device}\n")
    print(f"| {'section':<18} | {'workload':<38} | {'setup':<36} | {'rate':>10} | {'unit':<9} | {'ratio':>6} |")
    print(f"|{'-' * 20}|{'-' * 40}|{'-' * 38}|{'-' * 12}|{'-' * 11}|{'-' * 8}|")
    for section, workload, setup, rate, unit, ratio in rows:
        print(f"| {section:<18} | {workload:<38} | {setup:<36} | {rate:>10.1f} | {unit:<9} | {ratio:>5.2f}x |")


if __name__ == "__main__":
    main()
