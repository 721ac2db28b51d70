"""The ``ppgen`` command: ``list``, ``fit``, ``compare``, ``diagnose``."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

COMMAND_FILE = "command.json"  # the parsed options of `ppgen fit`, read back by --resume
SUMMARY_COLUMNS = ["mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "ess_tail", "r_hat"]


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
    f.add_argument("--out", default=None, help="run folder (default: runs/MODEL-METHOD)")
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
    c.add_argument("--methods", default="svi,map,nuts,numpyro-nuts,enum",
                   help="comma-separated methods (default: svi,map,nuts,numpyro-nuts,enum)")
    c.add_argument("--data", default=None, help="a .json or .csv data file (default: the model's bundled data)")
    c.add_argument("--reference", default="auto",
                   help="auto, exact, model, longest, one of the methods, a posteriordb *.draws.json.zip "
                        "or a summary .json")
    c.add_argument("--out", default=None, help="report folder (default: runs/compare-MODEL)")
    c.add_argument("--num-samples", type=int, default=1000)
    c.add_argument("--num-warmup", type=int, default=1000)
    c.add_argument("--num-chains", type=int, default=1)
    c.add_argument("--steps", type=int, default=2000, help="optimization steps (svi, map)")
    c.add_argument("--lr", type=float, default=None, help="learning rate of svi and map")
    c.add_argument("--seed", type=int, default=0, help="run i gets seed + i")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")

    d = sub.add_parser("diagnose", help="summary, warnings with hints, and diagnostic plots of a run folder")
    d.add_argument("folder")
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

    import ppgen
    from ppgen.api import prepare, resolve_model
    from ppgen.data import read_data_file
    from ppgen.errors import ConfigError
    from ppgen.inference.checkpoint import Interrupted
    from ppgen.runfolder import read_json, write_json

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
    if writer and args.resume is None:  # a fresh start: no stale state, and the options written first for --resume
        (out / "metrics.json").unlink(missing_ok=True)  # the folder no longer holds a complete run
        shutil.rmtree(out / "checkpoint", ignore_errors=True)
        write_json(out / COMMAND_FILE, {"argv": sys.argv, "args": {**vars(args), "method": method}})
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
        print(summary[[c for c in SUMMARY_COLUMNS if c in summary]].to_string(max_rows=40))
    for step, error in fit.errors.items():
        print(f"not written: {step} ({error})", file=sys.stderr)
    print(f"run folder: {out}")
    return 0


def _compare(args) -> int:
    import ppgen
    from ppgen import inference, report
    from ppgen.compare import markdown
    from ppgen.data import read_data_file

    data = read_data_file(args.data) if args.data else None
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    variational = [m for m in methods if inference.get(m).family == "variational"]
    options = {m: {"lr": args.lr} for m in variational} if args.lr is not None else {}
    table = ppgen.compare(args.model, data, methods=methods, reference=args.reference, seed=args.seed,
                          num_samples=args.num_samples, num_warmup=args.num_warmup, num_chains=args.num_chains,
                          steps=args.steps, options=options, device=args.device, progress=not args.no_progress)
    out = Path(args.out or f"runs/compare-{table.model_name}")
    page = report.write(table, out)
    print(markdown(table, ["method"] + [c for c in report.TABLE_COLUMNS if c in table.columns]), end="")
    for label, row in table.iterrows():
        if row["note"]:
            print(f"{label}: {row['note']}")
    reference = table.reference.source if table.reference is not None else "none (error columns empty)"
    print(f"reference: {reference}")
    print(f"report: {page}")
    return 0


def _diagnose(args) -> int:
    import ppgen
    from ppgen import diagnose

    fit = ppgen.load(args.folder)
    idata = fit.to_arviz()
    summary = fit.summary()
    print(summary[[c for c in SUMMARY_COLUMNS if c in summary]].to_string(max_rows=60))
    found = diagnose.flags(idata, summary)
    for flag in found:
        print(flag)
    if not found:
        print("no problems found")
    for name, written in diagnose.plots(idata, Path(args.folder)).items():
        print(f"{name}: {written}" if isinstance(written, Path) else f"{name}: not drawn ({written})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ppgen.errors import PPGenError

    try:
        command = {"list": _list, "fit": _fit, "compare": _compare, "diagnose": _diagnose}[args.command]
        return command() if args.command == "list" else command(args)
    except PPGenError as e:
        print(f"ppgen: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
