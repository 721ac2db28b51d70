"""The report a user reads after ``ppgen.compare``: PNG plots and one offline HTML page.

:func:`write` puts into a folder

- ``comparison.csv``, ``comparison.md`` (the table), ``detail.csv`` (per run and parameter),
  ``reference.csv`` (the reference's mean and sd);
- ``posteriors.png``: every run's marginal posterior per parameter, overlaid on the reference;
- ``errors.png``: per-parameter error of mean and sd against the reference, in reference sd units;
- ``ess.png``: bulk and tail ESS per second; ``losses.png``: loss curves of the optimization runs;
- ``rank-<run>.png``: rank plots of each MCMC run (one chain is split in halves, as split-r_hat does);
- ``model.svg``: the model's graph (:mod:`ppgen.graph`; without Graphviz the page says why it is missing);
- ``report.html``: all of it in one self-contained page (plots embedded as base64 PNG, the graph as
  inline SVG, no scripts, no network), with the problems :func:`ppgen.diagnose.flags` finds in each MCMC run.
"""
from __future__ import annotations

import base64
import html
import math
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ppgen import references  # noqa: E402
from ppgen.compare import Comparison, format_value, markdown  # noqa: E402
from ppgen.plots import figure_of, save_png  # noqa: E402
from ppgen.runfolder import atomic_path, write_text  # noqa: E402

DPI = 90  # the report's PNGs are shown at the page's full width

__all__ = ["write", "posteriors", "errors", "ess", "losses", "ranks"]

MAX_PARAMS = 12  # parameters shown in the per-parameter plots
MAX_DETAIL_ROWS = 500  # rows of the per-parameter table in the HTML page (detail.csv has all)
TABLE_COLUMNS = ["status", "wall_s", "steps", "draws", "ess_bulk_per_s", "ess_tail_per_s", "r_hat_max", "divergences",
                 "mean_err_max", "mean_err_avg", "sd_err_max", "sd_err_avg", "elbo", "log_evidence", "peak_mem_mb"]


def _columns(table: Comparison) -> dict[str, dict[str, np.ndarray]]:
    """``{run: {param: 1-D draws}}`` for the runs with draws."""
    out = {}
    for label, fit in table.fits.items():
        names, draws = references.flatten(fit.chains)
        if names:
            flat = draws.reshape(-1, draws.shape[-1])
            out[label] = {n: flat[:, i] for i, n in enumerate(names)}
    return out


def _params(table: Comparison, columns: dict) -> list[str]:
    """The parameters to plot: the reference's that some run has, else the first run's."""
    seen = {references.canonical(p): p for cols in columns.values() for p in cols}
    if table.reference is not None:
        chosen = [seen[references.canonical(p)] for p in table.reference.params if references.canonical(p) in seen]
        if chosen:
            return chosen[:MAX_PARAMS]
    return list(seen.values())[:MAX_PARAMS]


def _grid(n: int, width: float = 3.2, height: float = 2.4):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def posteriors(table: Comparison, path: Path) -> Path | None:
    """Each parameter's marginal posterior from every run (step histograms; a point estimate as a
    vertical line) over the reference (its draws, its exact Gaussian density, or mean +- sd)."""
    columns = _columns(table)
    params = _params(table, columns)
    if not params:
        return None
    ref = table.reference
    colors = {label: f"C{i}" for i, label in enumerate(table.index)}
    fig, axes = _grid(len(params))
    for ax, param in zip(axes, params):
        values = [cols[param] for cols in columns.values() if param in cols]
        key = ref.lookup(param) if ref is not None else None
        lo, hi = _range(values, ref, key)
        bins = np.linspace(lo, hi, 40)
        if key is not None:
            _draw_reference(ax, ref, key, bins)
        for label, cols in columns.items():
            x = cols.get(param)
            if x is None:
                continue
            if np.ptp(x) < 1e-12 * max(1.0, abs(x[0])):  # a point estimate (map)
                ax.axvline(x[0], color=colors[label], lw=1.5, label=label)
            else:
                ax.hist(x, bins=bins, density=True, histtype="step", lw=1.3, color=colors[label], label=label)
        ax.set_title(param, fontsize=9)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=8, bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return save_png(fig, path, DPI)


def _range(values: list, ref, key) -> tuple[float, float]:
    lows, highs = [], []
    for x in values:
        lows.append(np.percentile(x, 0.5))
        highs.append(np.percentile(x, 99.5))
    if key is not None:
        lows.append(ref.mean[key] - 3.5 * ref.sd[key])
        highs.append(ref.mean[key] + 3.5 * ref.sd[key])
    lo, hi = min(lows), max(highs)
    return (lo - 0.5, hi + 0.5) if hi - lo < 1e-9 else (lo, hi)


def _draw_reference(ax, ref, key: str, bins: np.ndarray) -> None:
    style = dict(color="0.75", label="reference")
    if key in ref.draws:
        ax.hist(ref.draws[key], bins=bins, density=True, alpha=0.6, **style)
    elif ref.kind == "closed form":
        grid = np.linspace(bins[0], bins[-1], 200)
        m, s = ref.mean[key], ref.sd[key]
        ax.fill_between(grid, np.exp(-0.5 * ((grid - m) / s) ** 2) / (s * math.sqrt(2 * math.pi)), alpha=0.6, **style)
    else:
        ax.axvspan(ref.mean[key] - ref.sd[key], ref.mean[key] + ref.sd[key], alpha=0.4, **style)
        ax.axvline(ref.mean[key], color="0.4", lw=1)


def errors(table: Comparison, path: Path) -> Path | None:
    """Per parameter and run: the error of the mean and of the sd, in reference sd units."""
    detail = table.detail.dropna(subset=["mean_err"]) if len(table.detail) else table.detail
    if not len(detail):
        return None
    params = list(dict.fromkeys(detail["param"]))[: 3 * MAX_PARAMS]
    detail = detail[detail["param"].isin(params)]
    y = {p: i for i, p in enumerate(params)}
    runs = list(dict.fromkeys(detail["run"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.8 + 0.28 * len(params)), sharey=True)
    for k, run in enumerate(runs):
        rows = detail[detail["run"] == run]
        offset = (k - (len(runs) - 1) / 2) * 0.12
        for ax, col in zip(axes, ("mean_err", "sd_err")):
            ax.scatter(rows[col], [y[p] + offset for p in rows["param"]], s=14,
                       color=f"C{list(table.index).index(run)}", label=run)
    for ax, title in zip(axes, ("(mean - ref mean) / ref sd", "sd / ref sd - 1")):
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(range(len(params)), params)
    axes[0].invert_yaxis()
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_png(fig, path, DPI)


def ess(table: Comparison, path: Path) -> Path | None:
    """Bulk and tail ESS per second of wall time (the smallest over parameters), log scale."""
    rows = table[np.isfinite(table["ess_bulk_per_s"].astype(float))]
    if not len(rows):
        return None
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.45 * len(rows)))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, rows["ess_bulk_per_s"].astype(float), height=0.4, label="bulk")
    ax.barh(y + 0.2, rows["ess_tail_per_s"].astype(float), height=0.4, label="tail")
    ax.set_yticks(y, list(rows.index))
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("min ESS / wall second")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path, DPI)


def losses(table: Comparison, path: Path) -> Path | None:
    """Loss (-ELBO, or -log joint for map) per step of each optimization run, with a running mean."""
    runs = {label: np.asarray(fit.losses, dtype=float) for label, fit in table.fits.items() if fit.losses}
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, loss in runs.items():
        color = f"C{list(table.index).index(label)}"
        ax.plot(loss, color=color, alpha=0.25, lw=0.6)
        w = max(1, len(loss) // 50)
        ax.plot(np.arange(w - 1, len(loss)), np.convolve(loss, np.ones(w) / w, mode="valid"), color=color, label=label)
    finite = np.concatenate([v[np.isfinite(v)] for v in runs.values()])
    lo, hi = np.percentile(finite, [0.5, 95])
    ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path, DPI)


def ranks(table: Comparison, folder: Path) -> list[Path]:
    """``rank-<run>.png`` for each MCMC run: per chain, the histogram of its draws' ranks among all
    chains (flat when the chains agree); a single chain is split into halves."""
    from ppgen.arviz_bridge import az

    out = []
    for label, fit in table.fits.items():
        if table.loc[label, "family"] != "mcmc" or not fit.chains:
            continue
        names, draws = references.flatten(fit.chains)
        wanted = [n for n in _params(table, {label: dict.fromkeys(names)}) if n in names][:4]
        idx = [names.index(n) for n in wanted]
        x = draws[..., idx]
        if x.shape[0] == 1:
            half = x.shape[1] // 2
            x = np.stack([x[0, :half], x[0, half: 2 * half]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = az.from_dict(posterior={n: x[..., i] for i, n in enumerate(wanted)})
            axes = az.plot_rank(idata, var_names=wanted, figsize=(3 * len(wanted), 2.6))
        fig = figure_of(axes)
        fig.suptitle(f"{label}" + (" (one chain, split in halves)" if draws.shape[0] == 1 else ""), fontsize=9)
        fig.tight_layout()
        out.append(save_png(fig, folder / f"rank-{_slug(label)}.png", DPI))
    return out


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


# ------------------------------------------------------------------------------------ writing
def write(table: Comparison, folder: str | Path, title: str | None = None, flags: bool = True) -> Path:
    """Write the table, the plots and ``report.html`` into ``folder``; returns the HTML's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "comparison.csv") as tmp:
        table.to_csv(tmp)
    write_text(folder / "comparison.md", markdown(table))
    with atomic_path(folder / "detail.csv") as tmp:
        table.detail.to_csv(tmp, index=False)
    if table.reference is not None:
        ref = table.reference
        lines = "".join(f"{p},{ref.mean[p]!r},{ref.sd[p]!r}\n" for p in ref.params)
        write_text(folder / "reference.csv", "param,mean,sd\n" + lines)
    figures = [("Posteriors", "Each run's marginal posteriors over the reference (grey).",
                posteriors(table, folder / "posteriors.png")),
               ("Errors against the reference", "Signed error of each parameter's posterior mean and sd, in "
                "reference sd units: 0 is exact; sd error < 0 is an under-dispersed approximation.",
                errors(table, folder / "errors.png")),
               ("Efficiency", "Smallest bulk and tail effective sample size over parameters, per second of wall time "
                "(MCMC and exact runs).", ess(table, folder / "ess.png")),
               ("Loss curves", "Optimization runs: loss per step, with a running mean.",
                losses(table, folder / "losses.png"))]
    figures += [("Rank plots", "Ranks of each chain's draws among all chains: flat histograms mean the chains "
                 "agree.", p)
                for p in ranks(table, folder)]
    found = _flags(table) if flags else {}
    page = _html(table, title or f"ppgen compare: {table.model_name}", [f for f in figures if f[2] is not None], found,
                 _graph_html(table, folder))
    write_text(folder / "report.html", page)
    return folder / "report.html"


def _flags(table: Comparison) -> dict[str, list]:
    """The problems :func:`ppgen.diagnose.flags` finds in each MCMC and variational run, with the
    checks of its method's family."""
    from ppgen import diagnose

    out = {}
    for label, fit in table.fits.items():
        family = table.loc[label, "family"]
        if family in ("mcmc", "variational") and fit.chains and fit.problem is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[label] = diagnose.flags(fit.to_arviz(), family=family, method=fit.method,
                                            diagnostics=fit.diagnostics, losses=fit.losses)
    return out


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
table.comparison th{vertical-align:bottom;max-width:6em}table.comparison td{white-space:nowrap}
th{background:#f2f2f2}td.text{text-align:left}tr.na td{color:#888}tr.failed td{color:#a00}
figure{margin:1.5em 0}figcaption{font-size:13px;color:#555}img{max-width:100%}
ul{font-size:14px}p.stamp{font-size:12px;color:#777}div.scroll{overflow-x:auto}code{background:#f5f5f5;padding:0 3px}"""


def _graph_html(table: Comparison, folder: Path) -> str:
    """Write ``model.svg`` and return it as a figure of inline SVG (namespaces dropped: HTML needs none,
    and the page names no address); if it cannot be drawn, a paragraph saying why, warned as a failed
    post-fit step is."""
    from ppgen import graph
    from ppgen.errors import record_failure

    try:
        svg = graph.write(table.problem, folder / "model.svg").read_text()
    except Exception as e:  # noqa: BLE001 - the runs are done: the page goes out without the graph
        errors = {}
        record_failure(errors, "model.svg", e, "model.svg not written")
        return f"<p>The model's graph was not drawn: {html.escape(errors['model.svg'], quote=False)}</p>"
    inline = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg[svg.index("<svg"):])
    return (f"<figure>{inline}<figcaption>Observed sites filled gray, latent ones white, plates as boxes, each "
            f"site's distribution listed (<code>model.svg</code>).</figcaption></figure>")


def _html(table: Comparison, title: str, figures: list, found: dict, graph: str) -> str:
    ref = table.reference
    esc = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"]
    if ref is not None:
        evidence = f"; exact log p(data) = {ref.log_evidence:.4f}" if ref.log_evidence is not None else ""
        parts.append(f"<p>Reference posterior: <b>{esc(ref.source)}</b>{esc(evidence)}. Errors are in reference sd "
                     f"units: <code>mean_err = (mean - ref mean) / ref sd</code>, "
                     f"<code>sd_err = sd / ref sd - 1</code> "
                     f"(max and mean of their absolute values over parameters).</p>")
    else:
        parts.append("<p>No reference posterior was available: the error columns are empty.</p>")
    parts.append("<h2>Runs</h2>" + _table_html(table))
    notes = [(label, row["status"], row["note"]) for label, row in table.iterrows() if row["note"]]
    problems = [(label, str(flag)) for label, flags in found.items() for flag in flags]
    if notes or problems:
        parts.append("<h2>What to look at</h2><ul>")
        parts += [f"<li><b>{esc(label)}</b> ({esc(status)}): {esc(note)}</li>" for label, status, note in notes]
        parts += [f"<li><b>{esc(label)}</b>: {esc(text)}</li>" for label, text in problems]
        parts.append("</ul>")
    parts.append(f"<h2>Model</h2>{graph}")
    for heading, caption, path in figures:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f"<h2>{esc(heading)}</h2><figure><img alt='{esc(Path(path).name)}' "
                     f"src='data:image/png;base64,{data}'><figcaption>{esc(caption)} "
                     f"(<code>{esc(Path(path).name)}</code>)</figcaption></figure>")
    if len(table.detail):
        shown = table.detail.head(MAX_DETAIL_ROWS).set_index("run")
        total = len(table.detail)
        more = "" if len(shown) == total else f" (the first {len(shown)} of {total}: see detail.csv)"
        parts.append(f"<h2>Per-parameter detail</h2><details><summary>mean, sd, errors, ESS, r_hat of each parameter "
                     f"in each run{more}</summary>" + _frame_html(shown) + "</details>")
    from ppgen.results import versions

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    software = ", ".join(f"{k} {v}" for k, v in versions().items())
    parts.append(f"<p class='stamp'>Written by ppgen on {stamp} ({esc(software)}).</p></body></html>")
    return "\n".join(parts)


def _table_html(table: Comparison) -> str:
    cols = [c for c in TABLE_COLUMNS if c in table.columns]
    # headers may wrap after an underscore, so the table fits a 1280-pixel page with every column shown
    head = "".join(f"<th>{html.escape(c).replace('_', '_<wbr>')}</th>" for c in ["run", "method"] + cols)
    rows = []
    for label, row in table.iterrows():
        cls = {"not applicable": "na", "failed": "failed"}.get(row["status"], "ok")
        cells = [f"<td class='text'>{html.escape(str(text))}</td>" for text in (label, row["method"])]
        cells += [f"<td{' class=text' if c == 'status' else ''}>{html.escape(format_value(row[c]))}</td>" for c in cols]
        rows.append(f"<tr class='{cls}'>{''.join(cells)}</tr>")
    return (f"<div class='scroll'><table class='comparison'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _frame_html(frame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or ""] + list(frame.columns))
    body = "".join("<tr>" + f"<td class='text'>{html.escape(str(i))}</td>" +
                   "".join(f"<td>{html.escape(format_value(v))}</td>" for v in row) + "</tr>"
                   for i, row in frame.iterrows())
    return f"<table class='detail'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
