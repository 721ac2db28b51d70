"""The ``ppgen`` command: ``list``, ``fit``, ``compare``, ``sbc``, ``diagnose``, ``graph``."""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

COMMAND_FILE = "command.json"  # the parsed options of `ppgen fit`, read back by --resume
SUMMARY_COLUMNS = ["mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "ess_tail", "r_hat"]
CHAIN_COLUMNS = ("ess_bulk", "ess_tail", "r_hat")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ppgen", description="Fit generative models written as Pyro programs.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered models and inference methods")

    f = sub.add_parser("fit", help="fit a model and write a run folder")
    f.add_argument("model", nargs="?", help="a registered model name or path/to/file.py:function")
    f.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the interrupted run in DIR with the options it was started with")
    f.add_argument("--method", default=None, help="inference method (default: the model's own default)")
    f.add_argument("--data", default=None, help="a .json or .csv data file (default: the model's bundled data)")
    f.add_argument("--out", default=None, help="run folder (default: runs/MODEL-METHOD, numbered -2, -3, ... "
                                                "when taken)")
    f.add_argument("--force", action="store_true", help="replace the run in --out (its old files are removed)")
    f.add_argument("--num-samples", type=int, default=1000)
    f.add_argument("--num-warmup", type=int, default=1000)
    f.add_argument("--num-chains", type=int, default=1)
    f.add_argument("--steps", type=int, default=2000, help="optimization steps (svi, map)")
    f.add_argument("--lr", type=float, default=None, help="learning rate (svi, map)")
    f.add_argument("--guide", default=None, help="guide name for svi/map (normal, delta, mvn, lowrank, ...)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    f.add_argument("--no-progress", action="store_true", help="no progress bars")

    c = sub.add_parser("compare", help="run several inference methods on one model; table, plots and an HTML report")
    c.add_argument("model", help="a registered model name or path/to/file.py:function")
    c.add_argument("--methods", default=None,
                   help="comma-separated methods (default: svi,map,nuts,numpyro-nuts,enum; for a model whose "
                        "latents are all discrete, a Bayes net: enum,likelihood-weighting,gibbs)")
    c.add_argument("--data", default=None, help="a .json or .csv data file (default: the model's bundled data)")
    c.add_argument("--reference", default="auto",
                   help="auto, exact, model, longest, one of the methods, a posteriordb *.draws.json.zip "
                        "or a summary .json")
    c.add_argument("--out", default=None, help="report folder (default: runs/compare-MODEL, numbered when taken)")
    c.add_argument("--force", action="store_true", help="replace the report in --out (its old files are removed)")
    c.add_argument("--num-samples", type=int, default=1000)
    c.add_argument("--num-warmup", type=int, default=1000)
    c.add_argument("--num-chains", type=int, default=4, help="chains of each MCMC method (default 4: r_hat needs >= 2)")
    c.add_argument("--steps", type=int, default=2000, help="optimization steps (svi, map)")
    c.add_argument("--lr", type=float, default=None, help="learning rate of svi and map")
    c.add_argument("--seed", type=int, default=0, help="run i gets seed + i")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")

    d = sub.add_parser("diagnose", help="summary, warnings with hints, and diagnostic plots of a run folder")
    d.add_argument("folder")

    g = sub.add_parser("graph", help="draw a model's graph: plates, observed and latent sites, distributions")
    g.add_argument("model", help="a registered model name or path/to/file.py:function")
    g.add_argument("--out", default="model.svg", help="the file to write, its format by suffix: .svg (default: "
                   "model.svg), .png, .pdf, or .dot/.gv for the dot source")
    g.add_argument("--data", default=None, help="a .json or .csv data file (default: the model's bundled data)")

    b = sub.add_parser("sbc", help="simulation-based calibration of inference methods: rank table and plots")
    b.add_argument("model", help="a registered model name or path/to/file.py:function")
    b.add_argument("--methods", default="nuts,svi", help="comma-separated methods (default: nuts,svi)")
    b.add_argument("--num-sims", type=int, default=100, help="simulated data sets (default 100)")
    b.add_argument("--data", default=None, help="a .json or .csv data file: the inputs and the observed shapes "
                   "(default: the model's bundled data)")
    b.add_argument("--num-samples", type=int, default=400)
    b.add_argument("--num-warmup", type=int, default=400)
    b.add_argument("--steps", type=int, default=2000, help="optimization steps (svi, map)")
    b.add_argument("--thin", type=int, default=None, help="keep every THIN-th draw (default 1; 4 for MCMC)")
    b.add_argument("--seed", type=int, default=0, help="simulation s fits with seed + s")
    b.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU core)")
    b.add_argument("--out", default=None, help="output folder (default: runs/sbc-MODEL, numbered when taken)")
    b.add_argument("--force", action="store_true", help="replace the results in --out (its old files are removed)")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    for command in sub.choices.values():  # on every command, whichever adds it
        command.add_argument("-v", "--verbose", action="store_true",
                             help="show third-party warnings (deprecations, banners), hidden by default")
    return p


def _list() -> int:
    from ppgen import inference, models

    print("models:")
    for spec in models.specs():
        print(f"  {spec.name:<24} [{', '.join(spec.backends)}] {spec.description}")
    print("methods:")
    for spec in inference.specs():
        print(f"  {spec.name:<24} ({spec.family}) {spec.description}")
    return 0


def _fit(args) -> int:
    import pyro

    from ppgen.api import prepare, resolve_model
    from ppgen.data import read_data_file
    from ppgen.errors import ConfigError
    from ppgen.runfolder import claimed, read_json, write_json

    if args.resume is not None:
        if args.model is not None:
            raise ConfigError("give either a model or --resume DIR, not both: a resumed run keeps its own options")
        out = Path(args.resume)
        if (out / "metrics.json").exists():
            print(f"run folder {out} is already complete; nothing to resume")
            return 0
        started = read_json(out / COMMAND_FILE)["args"]
        args = argparse.Namespace(**{**started, "resume": str(out), "no_progress": args.no_progress})
    elif args.model is None:
        raise ConfigError("ppgen fit needs a model name (see `ppgen list`) or --resume DIR")
    spec = resolve_model(args.model)
    method = args.method or spec.default_method
    out = Path(args.resume or args.out or f"runs/{spec.name}-{method}")
    writer = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 alone writes the run folder
    data = read_data_file(args.data) if args.data else None
    pyro.set_rng_seed(args.seed)
    problem = prepare(spec, data, device=args.device)  # bad data is refused before the folder is touched
    if not writer:
        return _run_fit(args, problem, method, out, writer)
    with claimed(out, numbered=args.resume is None and args.out is None, force=getattr(args, "force", False),
                 resume=args.resume is not None) as out:
        if args.resume is None:  # the options first, for --resume
            write_json(out / COMMAND_FILE, {"argv": sys.argv, "args": {**vars(args), "method": method,
                                                                       "out": str(out), "force": False}})
        return _run_fit(args, problem, method, out, writer)


def _run_fit(args, problem, method: str, out: Path, writer: bool) -> int:
    import ppgen
    from ppgen.inference.checkpoint import Interrupted

    options = {"lr": args.lr} if args.lr is not None else {}
    try:
        fit = ppgen.fit(problem, method=method, guide=args.guide, num_samples=args.num_samples,
                        num_warmup=args.num_warmup, num_chains=args.num_chains, steps=args.steps, seed=args.seed,
                        progress=not args.no_progress, checkpoint_dir=out / "checkpoint", **options)
    except Interrupted as e:
        print(f"ppgen: {e}\nresume with: ppgen fit --resume {out}", file=sys.stderr)
        return 130
    if not writer:
        return 0
    fit.save(out, checks=True)
    shutil.rmtree(out / "checkpoint", ignore_errors=True)  # the complete run folder supersedes it
    print(f"{fit.model_name} by {method}: {fit.seconds:.1f} s", end="")
    if "divergences" in fit.diagnostics:
        print(f", {fit.diagnostics['divergences']} divergences", end="")
    if fit.log_evidence is not None:
        print(f", log evidence {fit.log_evidence:.3f}", end="")
    if "elbo" in fit.diagnostics:
        print(f", ELBO {fit.diagnostics['elbo']:.3f}", end="")
    print()
    if fit.chains and "summary.csv" not in fit.errors:
        summary = fit.summary()
        named = _named_marginals(fit)
        print(named if named else _summary_text(summary, method, max_rows=40))
        from ppgen import diagnose, inference

        found = diagnose.flags(fit.to_arviz(), summary, family=inference.get(method).family, method=method,
                               diagnostics=fit.diagnostics, losses=fit.losses)
        for flag in found:
            print(flag)
        print(f"checks: {len(found)} problem(s) found" if found else "checks: no problems found",
              f"(the checks and plots: ppgen diagnose {out})")
    for step, error in fit.errors.items():
        print(f"not written: {step} ({error})", file=sys.stderr)
    print(f"run folder: {out}")
    return 0


def _named_marginals(fit, max_rows: int = 40) -> str | None:
    """For exact marginals of a model whose states have names (a Bayes net): ``p(v | data)`` state by
    state, and the MAP state (``*``); ``None`` for any other fit."""
    states = getattr(fit.problem.instance, "states", None) if fit.problem is not None else None
    marginals = fit.extras.get("marginals") if isinstance(fit.extras, dict) else None
    if not marginals or not isinstance(states, dict):
        return None
    best = fit.extras.get("map", {})
    given = ", ".join(f"{k}={v if isinstance(v, str) else states[k][int(v)]}" for k, v in fit.problem.data.items()
                      if k in states)
    lines = [f"p(node | {given or 'nothing observed'}), * the joint MAP assignment:"]
    for v, probs in list(marginals.items())[:max_rows]:
        cells = [f"{'*' if v in best and int(best[v]) == i else ''}{name} {float(p):.4f}"
                 for i, (name, p) in enumerate(zip(states[v], probs.reshape(-1)))]
        lines.append(f"  {v}: " + ", ".join(cells))
    if len(marginals) > max_rows:
        lines.append(f"  ... {len(marginals) - max_rows} more (ppgen.load(folder).extras['marginals'])")
    return "\n".join(lines)


def _summary_text(summary, method: str, max_rows: int) -> str:
    """The summary's columns that mean something for ``method``: chain statistics (ESS, r_hat) for
    MCMC only, as a guide's or a mode's draws are not a Markov chain."""
    from ppgen import inference

    mcmc = method in inference.names() and inference.get(method).family == "mcmc"
    columns = [c for c in SUMMARY_COLUMNS if c in summary and (mcmc or c not in CHAIN_COLUMNS)]
    return summary[columns].to_string(max_rows=max_rows)


def _compare(args) -> int:
    import ppgen
    from ppgen import inference, report
    from ppgen.api import resolve_model
    from ppgen.compare import markdown
    from ppgen.data import read_data_file
    from ppgen.runfolder import claimed

    data = read_data_file(args.data) if args.data else None
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    variational = [m for m in methods or () if inference.get(m).family == "variational"]
    options = {m: {"lr": args.lr} for m in variational} if args.lr is not None else {}
    out = Path(args.out or f"runs/compare-{resolve_model(args.model).name}")
    with claimed(out, numbered=args.out is None, force=args.force) as out:
        table = ppgen.compare(args.model, data, methods=methods, reference=args.reference, seed=args.seed,
                              num_samples=args.num_samples, num_warmup=args.num_warmup, num_chains=args.num_chains,
                              steps=args.steps, options=options, device=args.device, progress=not args.no_progress)
        page = report.write(table, out)
    print(markdown(table, ["method"] + [c for c in report.TABLE_COLUMNS if c in table.columns]), end="")
    for label, row in table.iterrows():
        if row["note"]:
            print(f"{label}: {row['note']}")
    reference = table.reference.source if table.reference is not None else "none (error columns empty)"
    print(f"reference: {reference}")
    print(f"report: {page}")
    return 0


def _graph(args) -> int:
    from ppgen import graph
    from ppgen.api import prepare
    from ppgen.data import read_data_file

    data = read_data_file(args.data) if args.data else None
    print(f"model graph: {graph.write(prepare(args.model, data, device='cpu'), args.out)}")
    return 0


def _diagnose(args) -> int:
    import ppgen
    from ppgen import diagnose, inference

    fit = ppgen.load(args.folder)
    idata = fit.to_arviz()
    summary = fit.summary()
    print(_summary_text(summary, fit.method, max_rows=60))
    family = inference.get(fit.method).family if fit.method in inference.names() else None
    checks, found = diagnose.diagnose(idata, summary, family=family, method=fit.method,
                                      diagnostics=fit.diagnostics, losses=fit.losses)
    print(f"checks for {fit.method} ({family or 'unknown family: checked as mcmc'}):")
    for check in checks:
        print(f"  {check}")
    for flag in found:
        print(flag)
    if not found:
        print("no problems found")
    for name, written in diagnose.plots(idata, Path(args.folder)).items():
        print(f"{name}: {written}" if isinstance(written, Path) else f"{name}: not drawn ({written})")
    return 0


def _sbc(args) -> int:
    from ppgen.api import resolve_model
    from ppgen.data import read_data_file
    from ppgen.runfolder import claimed
    from ppgen.sbc import sbc

    data = read_data_file(args.data) if args.data else None
    out = Path(args.out or f"runs/sbc-{resolve_model(args.model).name}")
    with claimed(out, numbered=args.out is None, force=args.force) as out:
        result = sbc(args.model, data, methods=args.methods, num_sims=args.num_sims, seed=args.seed,
                     num_samples=args.num_samples, num_warmup=args.num_warmup, steps=args.steps, thin=args.thin,
                     workers=args.workers, device=args.device, progress=not args.no_progress)
        written = result.save(out)
    print(result.to_markdown(), end="")
    for method, note in result.notes.items():
        print(f"{method}: {note}")
    print(f"folder: {out} ({', '.join(p.name for p in written.values())})")
    return 0


@contextmanager
def _quiet(verbose: bool):
    """Keep third-party warning banners and log lines (e.g. ArviZ's "Shape validation failed" on one
    chain) out of the output while a command runs; ppgen's own warnings still show."""
    from ppgen.errors import PPGenWarning

    disabled = logging.root.manager.disable
    with warnings.catch_warnings():
        if not verbose:
            warnings.filterwarnings("ignore")
            warnings.filterwarnings("default", category=PPGenWarning)
            logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(disabled)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ppgen.errors import PPGenError

    try:
        command = {"list": _list, "fit": _fit, "compare": _compare, "diagnose": _diagnose,
                   "graph": _graph, "sbc": _sbc}[args.command]
        with _quiet(args.verbose):
            return command() if args.command == "list" else command(args)
    except PPGenError as e:
        print(f"ppgen: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppgen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ppgen list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
