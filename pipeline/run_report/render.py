"""Step 2 of the run report: the data read from MLMD, as one static HTML page.

The page is self-contained: inline CSS and inline SVG (``svg.py``), no script, font,
image or style sheet fetched at view time, so it can be attached to a review or
served from a bucket as it is.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from typing import Any

from modules import ranking_metrics
from pipeline.run_report import svg
from pipeline.run_report.read import ExamplesData, RunData, VersionData
from pipeline.run_report.svg import esc, fmt

METRIC_LABELS = {**ranking_metrics.METRIC_LABELS, "loss": "loss"}

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #222;
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 0 0 10px; }
h3 { font-size: 16px; margin: 18px 0 8px; }
p { margin: 6px 0; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
.sub { color: #555; }
nav { margin: 10px 0 18px; display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 14px; }
nav a { color: #0b5cad; text-decoration: none; }
section { background: #fff; border: 1px solid #dcdfe4; border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
.verdict { border-left: 6px solid; padding: 10px 14px; margin: 12px 0; border-radius: 4px; }
.verdict.ok { border-color: #009E73; background: #e8f6f1; }
.verdict.no { border-color: #D55E00; background: #fbeee6; }
.verdict.info { border-color: #7f7f7f; background: #f0f0f0; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 520px), 1fr)); gap: 14px 20px; }
figure { margin: 0; min-width: 0; }
figure svg { display: block; width: 100%; height: auto; max-width: 640px; }
figcaption { font-size: 13px; color: #555; margin-top: 4px; }
figcaption b { color: #222; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; margin: 6px 0 10px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e6e8eb; text-align: left; vertical-align: top; }
td.path { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px;
          overflow-wrap: anywhere; min-width: 22em; }
th { background: #f6f7f9; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #eaf3fb; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; }
.chip { font-size: 12.5px; border-radius: 12px; padding: 2px 10px; background: #eef0f3; }
.chip.COMPLETE { background: #e3f4ec; } .chip.CACHED { background: #e8eef8; }
.chip.FAILED { background: #fbe3d9; } .chip.RUNNING, .chip.NEW { background: #fff4d6; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0 10px; font-size: 14px; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; }
.notes li { margin: 2px 0; }
.empty { color: #777; font-style: italic; }
"""


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _utc(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _figure(chart: str, caption: str) -> str:
    return f"<figure>{chart}<figcaption>{caption}</figcaption></figure>"


def _cell(value: Any) -> str:
    """A table cell: floats to 4 significant digits, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    numeric: Sequence[int] = (),
    row_classes: Sequence[str] | None = None,
    paths: Sequence[int] = (),
) -> str:
    def cls(i: int) -> str:
        return ' class="num"' if i in numeric else ' class="path"' if i in paths else ""

    head = "".join(f"<th{cls(i) if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        klass = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        cells = "".join(f"<td{cls(i)}>{esc(_cell(c))}</td>" for i, c in enumerate(row))
        body.append(f"<tr{klass}>{cells}</tr>")
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _facts(items: Sequence[tuple[str, Any]]) -> str:
    return (
        '<dl class="facts">'
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items if v not in (None, ""))
        + "</dl>"
    )


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def _page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], sections: Sequence[str]) -> str:
    links = "".join(f'<a href="#{anchor}">{esc(name)}</a>' for anchor, name in nav)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{esc(title)}</h1><p class="sub">{subtitle}</p><nav>{links}</nav>'
        + "".join(sections)
        + "</main></body></html>\n"
    )


# ---------------------------------------------------------------- evaluation


def gate_thresholds(evaluation: dict[str, Any]) -> list[tuple[float, str]]:
    """The values the gated metric had to reach, as (value, label), from the recorded gate."""
    gate = evaluation.get("gate") or {}
    metric = gate.get("metric")
    found = []
    trivial = (evaluation.get("trivial") or {}).get("metrics") or {}
    if metric in trivial and gate.get("min_lift") is not None:
        name = (evaluation.get("trivial") or {}).get("ranker", "trivial ranker")
        found.append((trivial[metric] + gate["min_lift"], f"{name} + {fmt(gate['min_lift'], 3)}"))
    baseline = (evaluation.get("baseline") or {}).get("metrics") or {}
    if metric in baseline and gate.get("max_regression") is not None:
        found.append((baseline[metric] - gate["max_regression"], f"baseline − {fmt(gate['max_regression'], 3)}"))
    if gate.get("min_value") is not None:
        found.append((float(gate["min_value"]), "min_value"))
    return found


def _difference_interval(evaluation: dict[str, Any]) -> tuple[float, float] | None:
    difference = evaluation.get("difference")
    if not difference or not difference.get("ci95"):
        return None
    lo, hi = difference["ci95"]
    return float(lo), float(hi)


def metrics_chart(evaluation: dict[str, Any]) -> str:
    """Candidate, baseline and trivial ranker per metric on all test lists; the gate on its metric.

    One axis: the unnormalised DCGs (unbounded) are drawn when the gate judges one of them,
    otherwise the metrics in [0, 1]; the table below the chart lists them all.
    """
    candidate = evaluation.get("metrics") or {}
    baseline = (evaluation.get("baseline") or {}).get("metrics")
    trivial = (evaluation.get("trivial") or {}).get("metrics")
    gate_metric = (evaluation.get("gate") or {}).get("metric")
    dcg_gate = str(gate_metric).startswith("dcg_")
    metrics = [m for m in candidate if m.startswith("dcg_") == dcg_gate]
    difference = evaluation.get("difference") or {}
    interval = _difference_interval(evaluation)
    intervals = None
    if interval and baseline and difference.get("metric") in metrics:
        intervals = [
            (baseline[m] + interval[0], baseline[m] + interval[1]) if m == difference["metric"] else None
            for m in metrics
        ]
    series = [svg.DotSeries("candidate", [candidate[m] for m in metrics], svg.CANDIDATE, intervals)]
    if baseline:
        series.append(svg.DotSeries("baseline (served)", [baseline.get(m) for m in metrics], svg.BASELINE))
    if trivial:
        ranker = (evaluation.get("trivial") or {}).get("ranker", "trivial ranker")
        series.append(svg.DotSeries(ranker, [trivial.get(m) for m in metrics], svg.TRIVIAL, hollow=True))
    thresholds = []
    if gate_metric in metrics:
        row = metrics.index(gate_metric)
        thresholds = [
            svg.RowThreshold(row, value, f"gate: ≥ {fmt(value)} ({label})")
            for value, label in gate_thresholds(evaluation)
        ]
    return svg.dot_chart(
        [_label(m) for m in metrics],
        series,
        title=f"Candidate vs baseline per metric on the {evaluation.get('split', 'test')} split",
        x_label="metric value (higher is better)",
        thresholds=thresholds,
    )


def _difference_rows(evaluation: dict[str, Any]) -> list[svg.Interval]:
    rows = []
    overall = evaluation.get("difference")
    if overall and overall.get("ci95"):
        rows.append(svg.Interval(f"all lists ({evaluation.get('lists', '?')})", overall["mean"], *overall["ci95"]))
    for s in evaluation.get("slices") or []:
        d = s.get("difference")
        if d and d.get("ci95"):
            rows.append(svg.Interval(f"{s['slice']} = {s['value']} ({s.get('lists', '?')})", d["mean"], *d["ci95"]))
    return rows


def difference_chart(evaluation: dict[str, Any]) -> str | None:
    rows = _difference_rows(evaluation)
    if not rows:
        return None
    metric = (
        evaluation.get("difference")
        or next((s["difference"] for s in evaluation.get("slices") or [] if s.get("difference")), {})
    ).get("metric", "")
    gate = evaluation.get("gate") or {}
    refs = [svg.RefLine(0.0, "no difference", svg.INK, dashed=False)]
    if gate.get("max_regression") is not None and gate.get("metric") == metric:
        refs.append(svg.RefLine(-float(gate["max_regression"]), f"gate: −{fmt(gate['max_regression'], 3)}"))
    return svg.interval_chart(
        rows,
        title=f"Candidate − baseline {_label(metric)}, 95% bootstrap interval",
        x_label=f"candidate − baseline {_label(metric)} (lists in brackets)",
        refs=refs,
    )


def _evaluation_section(data: RunData) -> str:
    evaluation = data.evaluation
    if not evaluation:
        return _section("evaluation", "Candidate vs baseline", '<p class="empty">No evaluation in this run.</p>')
    baseline = evaluation.get("baseline")
    figures = [
        _figure(
            metrics_chart(evaluation),
            "<b>Blue</b>: the candidate, "
            + ("<b>orange</b>: the version the registry serves, " if baseline else "")
            + "<b>grey</b>: the "
            f"{esc((evaluation.get('trivial') or {}).get('ranker', 'trivial ranker'))}; all on the same "
            f"{esc(evaluation.get('lists', '?'))} lists of the {esc(evaluation.get('split', 'test'))} split. "
            "Vermillion: the values the gated metric had to reach."
            + (
                " The blue bar is the 95% bootstrap interval of the candidate − baseline difference, "
                "drawn from the baseline's value: where it leaves the orange dot, the models differ."
                if _difference_interval(evaluation) and baseline
                else ""
            ),
        )
    ]
    chart = difference_chart(evaluation)
    if chart:
        figures.append(
            _figure(
                chart,
                "Paired bootstrap over lists of the candidate − baseline difference, for all lists and per slice; "
                "an interval that includes 0 means the data do not tell the two models apart.",
            )
        )
    elif baseline:
        figures.append(
            '<p class="empty">The evaluation records no interval for the candidate − baseline difference.</p>'
        )
    metrics = list(evaluation.get("metrics") or {})
    rows = [
        [
            "candidate",
            evaluation.get("model_artifact_id"),
            evaluation.get("lists"),
            *[fmt(evaluation["metrics"][m]) for m in metrics],
        ]
    ]
    if baseline:
        rows.append(
            [
                f"baseline: {baseline.get('description', '')}",
                baseline.get("model_artifact_id"),
                baseline.get("lists"),
                *[fmt((baseline.get("metrics") or {}).get(m)) for m in metrics],
            ]
        )
    trivial = evaluation.get("trivial")
    if trivial:
        rows.append(
            [
                f"trivial: {trivial.get('ranker', '')}",
                "",
                trivial.get("lists"),
                *[fmt((trivial.get("metrics") or {}).get(m)) for m in metrics],
            ]
        )
    table = _table(
        ["model", "MLMD artifact", "lists", *[_label(m) for m in metrics]], rows, numeric=range(2, 3 + len(metrics))
    )
    gate = evaluation.get("gate") or {}
    facts = _facts(
        [
            ("gated metric", _label(gate.get("metric", ""))),
            ("max regression vs baseline", gate.get("max_regression")),
            ("min lift over trivial", gate.get("min_lift")),
            ("min value", gate.get("min_value")),
            ("lists without a relevant document", evaluation.get("lists_without_relevant")),
            ("documents", evaluation.get("documents")),
            ("documents without a label", evaluation.get("documents_without_label")),
        ]
    )
    note = "" if baseline else '<p class="sub">No baseline: nothing was served when this model was judged.</p>'
    return _section(
        "evaluation", "Candidate vs baseline", f'{note}<div class="figures">{"".join(figures)}</div>{table}{facts}'
    )


def _slices_section(evaluation: dict[str, Any] | None) -> str | None:
    slices = (evaluation or {}).get("slices")
    if not slices:
        return None
    gate_metric = (evaluation.get("gate") or {}).get("metric") or "ndcg_10"
    by_dimension: dict[str, list[dict[str, Any]]] = {}
    for s in slices:
        by_dimension.setdefault(str(s["slice"]), []).append(s)
    figures, tables = [], []
    for dimension, entries in by_dimension.items():
        metric = next((e["difference"]["metric"] for e in entries if e.get("difference")), gate_metric)
        rows = [f"{e['value']} ({e.get('lists', '?')})" for e in entries]
        candidate = [(e.get("candidate") or {}).get(metric) for e in entries]
        baseline = [(e.get("baseline") or {}).get(metric) for e in entries]
        intervals = [
            (b + e["difference"]["ci95"][0], b + e["difference"]["ci95"][1])
            if b is not None and e.get("difference") and e["difference"].get("ci95")
            else None
            for e, b in zip(entries, baseline, strict=True)
        ]
        series = [svg.DotSeries("candidate", candidate, svg.CANDIDATE, intervals)]
        if any(v is not None for v in baseline):
            series.append(svg.DotSeries("baseline (served)", baseline, svg.BASELINE))
        chart = svg.dot_chart(
            rows, series, title=f"{_label(metric)} by {dimension}", x_label=f"{_label(metric)} (lists in brackets)"
        )
        figures.append(
            _figure(
                chart,
                f"<b>{esc(dimension)}</b>: {_label(metric)} of the candidate (blue) and "
                "the served baseline (orange) per value; the blue bar is the 95% bootstrap "
                "interval of their difference, drawn from the baseline's value.",
            )
        )
        for e in entries:
            d = e.get("difference") or {}
            tables.append(
                [
                    dimension,
                    e["value"],
                    e.get("lists"),
                    _label(metric),
                    fmt((e.get("candidate") or {}).get(metric)),
                    fmt((e.get("baseline") or {}).get(metric)),
                    fmt(d["mean"]) if d.get("ci95") else "–",
                    f"{fmt(d['ci95'][0])} to {fmt(d['ci95'][1])}" if d.get("ci95") else "–",
                ]
            )
    table = _table(
        ["slice", "value", "lists", "metric", "candidate", "baseline", "candidate − baseline", "95% interval"],
        tables,
        numeric=(2, 4, 5, 6, 7),
    )
    return _section("slices", "Slices", f'<div class="figures">{"".join(figures)}</div>{table}')


# ---------------------------------------------------------------- tuner and training


def tuner_chart(data: RunData) -> str:
    trials = data.tuner.trials
    points = [(i + 1, float(t["score"])) for i, t in enumerate(trials) if t.get("score") is not None]
    best, running = [], -math.inf
    for x, y in points:
        running = max(running, y)
        best.append((x, running))
    series = [
        svg.Series("trial objective", points, svg.CANDIDATE, line=False),
        svg.Series("best so far", best, svg.GREEN, step=True, markers=False),
    ]
    hlines = []
    history = (data.training.metrics.get("validation_history") if data.training else None) or []
    if history:
        hlines.append(svg.RefLine(max(history), "Trainer: best validation NDCG@10", svg.PURPLE))
    return svg.line_chart(
        series,
        title="Tuner trials",
        x_label="trial (in the order run)",
        y_label=f"objective: {data.tuner.objective}",
        hlines=hlines,
    )


def _tuner_section(data: RunData) -> str:
    tuner = data.tuner
    if tuner is None:
        return _section("tuner", "Tuner", '<p class="empty">No tuner trials for this run (see the notes).</p>')
    if not tuner.trials:
        return _section("tuner", "Tuner", '<p class="empty">The Tuner recorded no completed trial.</p>')
    keys = sorted({k for t in tuner.trials for k in t if k not in ("trial_id", "score")})
    best_score = max(float(t["score"]) for t in tuner.trials if t.get("score") is not None)
    rows = [
        [i + 1, t.get("trial_id"), fmt(t.get("score")), *[t.get(k, "") for k in keys]]
        for i, t in enumerate(tuner.trials)
    ]
    classes = ["best" if t.get("score") == best_score else "" for t in tuner.trials]
    settings = ", ".join(
        f"{k} {v}" for k, v in sorted(tuner.settings.items()) if k not in ("hyperparameters_uri", "enabled")
    )
    body = (
        f"<p>Trials of {esc(tuner.source)}; objective <code>{esc(tuner.objective)}</code> "
        f"(validation NDCG@10 on the eval split, maximised). Settings: {esc(settings or 'not recorded')}.</p>"
        + '<div class="figures">'
        + _figure(
            tuner_chart(data),
            "Each dot is one completed trial's objective (its best epoch); the green step "
            "line is the best so far; pink: the Trainer's best validation NDCG@10 with the chosen "
            "hyperparameters and the full training budget.",
        )
        + "</div>"
        + _table(["#", "trial", "objective", *keys], rows, numeric=(0, 2), row_classes=classes)
        + f'<p class="sub mono">{esc(tuner.uri)}</p>'
    )
    return _section("tuner", "Tuner", body)


def training_charts(data: RunData) -> list[tuple[str, str]]:
    training = data.training
    curves = training.curves
    charts = []
    loss = [(phase, curves.get(phase, {}).get("loss")) for phase in ("train", "validation")]
    loss = [(phase, points) for phase, points in loss if points]
    best_epoch = training.metrics.get("best_epoch")
    vlines = [svg.RefLine(best_epoch, f"best epoch ({best_epoch}), weights kept", svg.GREEN)] if best_epoch else []
    colors = {"train": svg.SKY, "validation": svg.CANDIDATE}
    if loss:
        charts.append(
            (
                svg.line_chart(
                    [svg.Series(phase, points, colors[phase], dashed=phase == "train") for phase, points in loss],
                    title="Training and validation loss",
                    x_label="epoch",
                    y_label="loss",
                    vlines=vlines,
                ),
                "Ranking loss per epoch, training (dashed) and validation (eval split), from the Trainer's TensorBoard "
                "events.",
            )
        )
    ndcg = [(phase, curves.get(phase, {}).get("ndcg_10")) for phase in ("train", "validation")]
    ndcg = [(phase, points) for phase, points in ndcg if points]
    source = "the Trainer's TensorBoard events"
    if not any(phase == "validation" for phase, _ in ndcg) and training.metrics.get("validation_history"):
        ndcg.append(("validation", [(i + 1, v) for i, v in enumerate(training.metrics["validation_history"])]))
        source = "metrics.json (validation) and TensorBoard events (training)" if len(ndcg) > 1 else "metrics.json"
    if ndcg:
        charts.append(
            (
                svg.line_chart(
                    [svg.Series(phase, points, colors[phase], dashed=phase == "train") for phase, points in ndcg],
                    title="Training and validation NDCG@10",
                    x_label="epoch",
                    y_label="NDCG@10",
                    vlines=vlines,
                    y_clamp=(0.0, 1.0),
                ),
                f"NDCG@10 per epoch, training (dashed) and validation, from {source}; early stopping watches the "
                "validation curve.",
            )
        )
    return charts


def _position_bias_text(m: dict[str, Any]) -> str | None:
    mode = m.get("position_bias")
    if mode == "ipw":
        return f"ipw: inverse propensity weights, clipped at {m.get('ipw_max_weight')} (propensities below)"
    if mode == "bias_tower":
        extra = ", ".join(m.get("bias_features") or [])
        return "bias_tower: a training-only tower on the position" + (f" and {extra}" if extra else "")
    return mode


def _training_section(data: RunData) -> str:
    training = data.training
    if training is None:
        return _section("training", "Training", '<p class="empty">No training in this run (see the notes).</p>')
    m = training.metrics
    charts = training_charts(data)
    figures = "".join(_figure(chart, caption) for chart, caption in charts) or (
        '<p class="empty">No per-epoch values recorded.</p>'
    )
    facts = _facts(
        [
            (
                "ensemble",
                f"{len(m['ensemble'])} models (seeds {', '.join(str(e.get('seed')) for e in m['ensemble'])}), "
                "served as one scoring their mean; the curves and epochs are the first model's"
                if len(m.get("ensemble") or []) > 1
                else None,
            ),
            ("epochs run", m.get("epochs_run")),
            ("best epoch", m.get("best_epoch")),
            ("stopped early", {True: "yes", False: "no"}.get(m.get("stopped_early"))),
            ("train steps", m.get("train_steps")),
            (
                "strategy",
                f"{m.get('strategy')} ({m.get('replicas')} replica(s), global batch {m.get('global_batch_size')})"
                if m.get("strategy")
                else None,
            ),
            (
                "training throughput",
                f"{fmt(m['train_lists_per_second'], 1)} lists/s" if m.get("train_lists_per_second") else None,
            ),
            ("eval-split metrics", "  ".join(f"{_label(k)} {fmt(v)}" for k, v in (m.get("eval") or {}).items())),
            ("position bias", _position_bias_text(m)),
        ]
    )
    hp = m.get("hyperparameters") or {}
    table = _table(["hyperparameter", "value"], [[k, hp[k]] for k in sorted(hp)]) if hp else ""
    propensities = m.get("propensities") or []
    if propensities:
        max_weight = float(m.get("ipw_max_weight") or 0) or float("inf")
        table += _table(
            ["position", "estimated propensity (vs. position 1)", "weight 1/propensity, clipped"],
            [[k, fmt(p), fmt(min(1 / p, max_weight))] for k, p in enumerate(propensities, start=1)],
        )
    return _section(
        "training",
        "Training",
        f'<div class="figures">{figures}</div>{facts}{table}<p class="sub mono">{esc(training.uri)}</p>',
    )


# ---------------------------------------------------------------- data


def _data_section(data: RunData) -> str:
    if not data.examples:
        return _section("data", "Data", '<p class="empty">No Examples artifact read (see the notes).</p>')
    rows = []
    for ex in data.examples:
        s = ex.summary or {}
        splits = s.get("splits") or {}
        rows.append(
            [
                ex.span if ex.span is not None else "–",
                ex.version if ex.version is not None else "–",
                ex.artifact_id,
                ", ".join(ex.used_by),
                s.get("rows_read", "–"),
                "  ".join(f"{name} {v.get('lists', 0)}" for name, v in splits.items()) or "–",
                "  ".join(f"{name} {v.get('documents', 0)}" for name, v in splits.items()) or "–",
                s.get("bad_rows", "–"),
            ]
        )
    table = _table(
        ["span", "version", "artifact", "read by", "rows read", "lists per split", "documents per split", "bad rows"],
        rows,
        numeric=(0, 1, 2, 4, 7),
    )
    newest = max(data.examples, key=lambda e: ((e.span or 0), (e.version or 0), e.artifact_id))
    body = [table, _examples_detail(newest)]
    return _section("data", "Data", "".join(body))


def _examples_detail(ex: ExamplesData) -> str:
    s = ex.summary
    if not s:
        return f'<p class="empty">Examples artifact {ex.artifact_id} has no summary.</p>'
    figures = []
    histogram = (s.get("list_size") or {}).get("histogram") or {}
    if histogram:
        points = sorted((int(size), count) for size, count in histogram.items())
        dist = s["list_size"]
        figures.append(
            _figure(
                svg.bar_chart(points, title="Documents per list", x_label="documents in the list", y_label="lists"),
                f"List sizes over all splits: {dist.get('count')} lists, mean {fmt(dist.get('mean'), 1)}, median "
                f"{dist.get('p50')}, p90 {dist.get('p90')}, max {dist.get('max')}"
                + (
                    f"; {s.get('lists_capped')} lists capped at max_list_size {s.get('max_list_size')}, "
                    f"{s.get('documents_cut_by_max_list_size')} documents cut"
                    if s.get("lists_capped")
                    else ""
                )
                + ".",
            )
        )
    valid_rows = int(s.get("rows_read") or 0) - int(s.get("bad_rows") or 0)
    missing = s.get("missing_values") or {}
    complete = sorted(name for name, count in missing.items() if not count)
    items = sorted(((k, v) for k, v in missing.items() if v), key=lambda kv: (-kv[1], kv[0]))
    if items:
        figures.append(
            _figure(
                svg.hbar_chart(
                    items,
                    title="Missing values per feature",
                    x_label="missing values",
                    color=svg.SKY,
                    value_format=lambda v: f"{fmt(v)} ({100 * v / valid_rows:.1f}%)" if valid_rows else fmt(v),
                ),
                f"Cells absent or empty in the logs, per feature, of the {valid_rows} valid rows; Transform fills "
                "them with the schema default."
                + (f" No missing values in: {esc(', '.join(complete))}." if complete else ""),
            )
        )
    bad = s.get("dead_letter") or {}
    if bad:
        figures.append(
            _figure(
                svg.hbar_chart(
                    sorted(bad.items(), key=lambda kv: (-kv[1], kv[0])),
                    title="Dead letter by reason",
                    x_label="rows set aside",
                    color=svg.THRESHOLD,
                ),
                f"Rows not written, by reason ({s.get('bad_rows')} of {s.get('rows_read')} rows, "
                f"{100 * float(s.get('bad_row_fraction') or 0):.2f}%); each is in "
                f"<code>{esc(s.get('dead_letter_uri', ''))}</code>.",
            )
        )
    extra = _facts(
        [
            ("rows read", s.get("rows_read")),
            ("files", s.get("files")),
            ("bad rows", "none" if not bad else s.get("bad_rows")),
            (
                "features dropped (not in the schema)",
                ", ".join(f"{k} ({v})" for k, v in (s.get("dropped_features") or {}).items()) or None,
            ),
            ("synthesized query ids", s.get("synthesized_query_ids") or None),
        ]
    )
    return (
        f"<h3>Span {esc(_cell(ex.span))}, version {esc(_cell(ex.version))} (Examples artifact {ex.artifact_id})</h3>"
        f'{extra}<div class="figures">{"".join(figures)}</div><p class="sub mono">{esc(ex.uri)}</p>'
    )


# ---------------------------------------------------------------- lineage and the run


def _execution_text(e: dict[str, Any] | None) -> str:
    if not e:
        return "not found in MLMD"
    return f"{e.get('node') or e.get('type')} (execution {e.get('execution_id')}, {e.get('state')})"


def _lineage_section(data: RunData) -> str:
    lineage = data.lineage
    registration = data.registration or {}
    if registration.get("pushed"):
        head = (
            f'<div class="verdict ok">Registered as <b>{esc(registration["model_name"])} version '
            f"{esc(registration['version'])}</b> in the {esc(registration['backend'])} registry: "
            f"<code>{esc(registration.get('path') or '')}</code></div>"
        )
    elif registration:
        head = f'<div class="verdict no">Not registered: {esc(registration.get("reason", ""))}</div>'
    else:
        head = '<div class="verdict info">This run has no Pusher output.</div>'
    if not lineage:
        return _section("lineage", "Lineage", head + '<p class="empty">No lineage (see the notes).</p>')
    hp = lineage.get("hyperparameters") or {}
    rows = [
        ["Model", f"artifact {lineage['model']['artifact_id']}", lineage["model"]["uri"]],
        ["Pusher", _execution_text(lineage.get("pusher")), ""],
        ["Trainer", _execution_text(lineage.get("trainer")), ""],
        ["Transform", _execution_text(lineage.get("transform")), ""],
        [
            "Hyperparameters",
            f"{hp.get('source', '')}"
            + (f", artifact {hp['artifact_id']}" if hp.get("artifact_id") else "")
            + (f", by {_execution_text(hp['producer'])}" if hp.get("producer") else ""),
            hp.get("uri", ""),
        ],
    ]
    bias = lineage.get("position_bias") or {}
    propensities = bias.get("propensities")
    if bias.get("mode", "none") != "none":
        rows.append(
            [
                "Position bias",
                bias["mode"]
                + (
                    f": propensities artifact {propensities['artifact_id']}, "
                    f"by {_execution_text(propensities['producer'])}"
                    if propensities
                    else ""
                ),
                propensities["uri"] if propensities else "",
            ]
        )
    for schema in lineage.get("schema") or []:
        rows.append(
            ["Schema", f"artifact {schema['artifact_id']} by {_execution_text(schema.get('producer'))}", schema["uri"]]
        )
    for ex in lineage.get("examples") or []:
        rows.append(
            [
                "Examples",
                f"artifact {ex['artifact_id']}: span {_cell(ex.get('span'))}, version {_cell(ex.get('version'))}, "
                f"splits {ex.get('split_names')}, by {_execution_text(ex.get('producer'))}"
                + (f"; input fingerprint {ex['input_fingerprint']}" if ex.get("input_fingerprint") else ""),
                ex["uri"],
            ]
        )
    return _section(
        "lineage",
        "Lineage",
        head
        + f"<p>From MLMD, the lineage of the {esc(data.lineage_subject)}.</p>"
        + _table(["", "what", "where"], rows, paths=(2,)),
    )


def _run_section(data: RunData) -> str:
    chips = "".join(
        f'<span class="chip {esc(e.state)}" title="execution {e.id}">{esc(e.node)}: {esc(e.state)}</span>'
        for e in data.executions
    )
    notes = ""
    if data.notes:
        notes = '<h3>Not shown</h3><ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in data.notes) + "</ul>"
    return _section("run", "Run", f'<div class="chips">{chips}</div>{notes}')


def _verdict(data: RunData) -> str:
    evaluation = data.evaluation
    if not evaluation:
        return '<div class="verdict info">No evaluation: this run did not reach the RankingEvaluator.</div>'
    blessed = evaluation.get("blessed")
    registration = data.registration or {}
    pushed = (
        f" Registered as version {esc(registration.get('version'))}."
        if registration.get("pushed")
        else " Not registered."
        if registration
        else ""
    )
    return (
        f'<div class="verdict {"ok" if blessed else "no"}"><b>{"Blessed" if blessed else "Not blessed"}</b>: '
        f"{esc(evaluation.get('reason', ''))}.{pushed}</div>"
    )


def render_run(data: RunData, generated_at: str | None = None) -> str:
    """The whole page for one run."""
    generated_at = generated_at or _utc(datetime.datetime.now(tz=datetime.UTC).timestamp() * 1000)
    sections = [_verdict(data), _evaluation_section(data)]
    nav = [("evaluation", "Candidate vs baseline")]
    slices = _slices_section(data.evaluation)
    if slices:
        sections.append(slices)
        nav.append(("slices", "Slices"))
    sections += [
        _tuner_section(data),
        _training_section(data),
        _data_section(data),
        _lineage_section(data),
        _run_section(data),
    ]
    nav += [("tuner", "Tuner"), ("training", "Training"), ("data", "Data"), ("lineage", "Lineage"), ("run", "Run")]
    subtitle = (
        f"Pipeline <b>{esc(data.pipeline_name)}</b>, run started {esc(_utc(data.created_ms))}. "
        f"Read from MLMD <code>{esc(data.metadata_path)}</code>; page written {esc(generated_at)} by "
        "<code>ltr report</code>."
    )
    return _page(f"Run report: {data.run_id}", subtitle, nav, sections)


# ---------------------------------------------------------------- registered versions


def _metric_order(metrics) -> list[str]:
    order = list(METRIC_LABELS)
    return sorted(metrics, key=lambda m: (order.index(m) if m in order else len(order), m))


def versions_chart(versions: Sequence[VersionData]) -> str:
    metrics = _metric_order({m for v in versions for m in v.metrics})
    series = [
        svg.Series(
            _label(m),
            [(v.version, v.metrics[m]) for v in versions if m in v.metrics],
            svg.SERIES_COLORS[i % len(svg.SERIES_COLORS)],
        )
        for i, m in enumerate(metrics)
    ]
    serving = [v.version for v in versions if v.serving]
    vlines = [svg.RefLine(serving[0], f"served: version {serving[0]}", svg.THRESHOLD)] if serving else []
    return svg.line_chart(
        series,
        title="Registered versions",
        x_label="registered version",
        y_label="metric at registration",
        vlines=vlines,
        y_clamp=(0.0, math.inf) if any(m.startswith("dcg_") for m in metrics) else (0.0, 1.0),  # DCG is unbounded
    )


def render_versions(
    model_name: str,
    backend: str,
    versions: Sequence[VersionData],
    run_links: dict[str, str] | None = None,
    generated_at: str | None = None,
) -> str:
    generated_at = generated_at or _utc(datetime.datetime.now(tz=datetime.UTC).timestamp() * 1000)
    run_links = run_links or {}
    title = f"Registered versions of {model_name}"
    subtitle = f"{esc(backend)} registry; page written {esc(generated_at)} by <code>ltr report --versions</code>."
    if not versions:
        return _page(
            title, subtitle, [], [_section("versions", "Versions", '<p class="empty">No registered version.</p>')]
        )
    metrics = _metric_order({m for v in versions for m in v.metrics})
    rows, classes = [], []
    for v in versions:
        rows.append(
            [
                ("* " if v.serving else "") + str(v.version),
                v.registered_at,
                ", ".join(map(str, v.spans)),
                *[fmt(v.metrics.get(m)) if m in v.metrics else "–" for m in metrics],
                v.pipeline_run_id or "",
                v.model_artifact_id or "",
            ]
        )
        classes.append("best" if v.serving else "")
    table = _table(
        ["version", "registered", "spans", *[_label(m) for m in metrics], "pipeline run", "MLMD model"],
        rows,
        numeric=range(3, 3 + len(metrics)),
        row_classes=classes,
    )
    links = [
        f'<li><a href="{esc(href)}">version {v.version}: run {esc(v.pipeline_run_id)}</a></li>'
        for v in versions
        for run, href in run_links.items()
        if v.pipeline_run_id == run
    ]
    body = (
        '<div class="figures">'
        + _figure(
            versions_chart(versions),
            "The metrics recorded when each version was registered (the RankingEvaluator's, on its own run's "
            "test split: versions trained on different spans were judged on different lists). Vermillion: "
            "the version the registry serves now.",
        )
        + "</div>"
        + table
        + '<p class="sub">* = the version to serve.</p>'
        + (f"<h3>Run reports</h3><ul>{''.join(links)}</ul>" if links else "")
    )
    return _page(title, subtitle, [("versions", "Versions")], [_section("versions", "Versions", body)])
