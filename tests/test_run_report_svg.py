"""The run report's SVG helpers and page rendering, on hand-made data (no pipeline run)."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from pipeline.run_report import svg
from pipeline.run_report.read import ExamplesData, RunData, TrainingData, TunerData
from pipeline.run_report.render import gate_thresholds, render_run, render_versions

NS = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    root = ET.fromstring(markup)  # well-formed XML, or this raises
    assert root.tag == f"{NS}svg"
    return root


def data_marks(root: ET.Element, tag: str | None = None) -> list[ET.Element]:
    return [
        e for e in root.iter() if "data" in (e.get("class") or "").split() and (tag is None or e.tag == f"{NS}{tag}")
    ]


def texts(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{NS}text")]


def test_ticks_are_round_numbers_covering_the_domain():
    assert svg.nice_step(1.0) == 0.2 and svg.nice_step(0.07) == 0.02 and svg.nice_step(300) == 100
    lo, hi = svg.nice_domain([0.613, 0.787])
    assert lo <= 0.613 and hi >= 0.787 and hi - lo < 0.5
    assert svg.ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.ticks(1, 6, target=8, integer=True) == [1, 2, 3, 4, 5, 6]
    lo, hi = svg.nice_domain([0.5, 0.5])  # one value: a window around it
    assert lo < 0.5 < hi
    assert svg.nice_domain([0.95, 0.99], clamp=(0.0, 1.0))[1] == 1.0
    assert svg.tick_label(-0.0, 0.05) == "0.00" and svg.tick_label(0.25, 0.05) == "0.25"
    assert svg.Linear((0.0, 1.0), (100.0, 300.0))(0.25) == 150.0


def test_line_chart_draws_every_point_in_place_with_labelled_axes():
    chart = svg.line_chart(
        [
            svg.Series("train", [(1, 0.5), (2, 0.7), (3, 0.8)], svg.SKY),
            svg.Series("validation", [(1, 0.4), (2, 0.6), (3, 0.55)]),
        ],
        title="curves",
        x_label="epoch",
        y_label="NDCG@10",
        vlines=[svg.RefLine(2, "best epoch", svg.GREEN)],
    )
    root = parse(chart)
    dots = data_marks(root, "circle")
    assert len(dots) == 6 and len(data_marks(root, "polyline")) == 2
    assert "epoch" in texts(root) and "NDCG@10" in texts(root)
    # Higher values are drawn higher (smaller y), and the x order is kept.
    by_title = {d.find(f"{NS}title").text: (float(d.get("cx")), float(d.get("cy"))) for d in dots}
    assert by_title["train: epoch 3, NDCG@10 0.8000"][1] < by_title["train: epoch 1, NDCG@10 0.5000"][1]
    assert by_title["train: epoch 1, NDCG@10 0.5000"][0] < by_title["train: epoch 2, NDCG@10 0.7000"][0]
    # The best-epoch line sits at the x of epoch 2.
    (ref,) = [e for e in root.iter(f"{NS}line") if e.get("class") == "ref"]
    assert float(ref.get("x1")) == pytest.approx(by_title["train: epoch 2, NDCG@10 0.7000"][0], abs=0.1)


def test_dot_chart_marks_the_gate_threshold_on_its_row_with_intervals():
    chart = svg.dot_chart(
        ["NDCG@1", "NDCG@10"],
        [
            svg.DotSeries("candidate", [0.6, 0.8], svg.CANDIDATE, [None, (0.75, 0.86)]),
            svg.DotSeries("baseline", [0.62, 0.79], svg.BASELINE),
        ],
        title="metrics",
        x_label="metric value",
        thresholds=[svg.RowThreshold(1, 0.78, "gate: ≥ 0.78")],
    )
    root = parse(chart)
    assert len(data_marks(root, "circle")) == 4
    (interval,) = [e for e in root.iter(f"{NS}line") if "interval" in (e.get("class") or "")]
    (threshold,) = [e for e in root.iter(f"{NS}line") if "threshold" in (e.get("class") or "")]
    dots = {d.find(f"{NS}title").text.split(":")[0]: d for d in data_marks(root, "circle")}
    x_candidate_10 = float(dots["candidate, NDCG@10"].get("cx"))
    assert float(interval.get("x1")) < x_candidate_10 < float(interval.get("x2"))
    # The threshold (0.78) lies between the baseline (0.79) and the candidate's lower bound (0.75).
    assert float(interval.get("x1")) < float(threshold.get("x1")) < float(dots["baseline, NDCG@10"].get("cx"))
    assert float(threshold.get("y1")) > float(dots["candidate, NDCG@1"].get("cy"))  # on the NDCG@10 row
    assert "gate: ≥ 0.78" in texts(root) and "metric value" in texts(root)


def test_interval_chart_colours_rows_by_what_the_interval_says():
    chart = svg.interval_chart(
        [
            svg.Interval("better", 0.05, 0.01, 0.09),
            svg.Interval("worse", -0.05, -0.09, -0.01),
            svg.Interval("unclear", 0.01, -0.03, 0.05),
        ],
        title="differences",
        x_label="candidate − baseline",
        refs=[svg.RefLine(0.0, "no difference", svg.INK, dashed=False), svg.RefLine(-0.01, "gate: −0.01")],
    )
    root = parse(chart)
    colours = {d.find(f"{NS}title").text.split(":")[0]: d.get("stroke") for d in data_marks(root, "circle")}
    assert colours == {"better": svg.CANDIDATE, "worse": svg.THRESHOLD, "unclear": svg.TRIVIAL}
    assert len([e for e in root.iter(f"{NS}line") if e.get("class") == "ref"]) == 2


def test_bar_charts_scale_bars_to_their_values_and_escape_labels():
    root = parse(svg.bar_chart([(3, 10), (4, 5)], title="sizes", x_label="documents", y_label="lists"))
    tall, short = data_marks(root, "rect")
    assert float(tall.get("height")) == pytest.approx(2 * float(short.get("height")), rel=1e-3)
    root = parse(svg.hbar_chart([("a<b&c", 4), ("d", 2)], title="missing", x_label="values"))
    first, second = data_marks(root, "rect")
    assert float(first.get("width")) == pytest.approx(2 * float(second.get("width")), rel=1e-3)
    assert "a<b&c" in texts(root)  # escaped in the markup, intact once parsed


def synthetic_run(slices: bool = True) -> RunData:
    evaluation = {
        "split": "test",
        "model_artifact_id": 19,
        "metrics": {"ndcg_1": 0.59, "ndcg_5": 0.75, "ndcg_10": 0.79, "mrr": 0.96},
        "lists": 24,
        "baseline": {
            "model_artifact_id": 12,
            "registry_version": 1,
            "description": "local registry 'ranker' version 1 (served)",
            "metrics": {"ndcg_1": 0.67, "ndcg_5": 0.76, "ndcg_10": 0.80, "mrr": 0.98},
            "lists": 24,
        },
        "trivial": {"ranker": "logged order", "metrics": {"ndcg_1": 0.13, "ndcg_5": 0.25, "ndcg_10": 0.38, "mrr": 0.7}},
        "gate": {"metric": "ndcg_10", "max_regression": 0.01, "min_lift": 0.01, "min_value": None},
        "blessed": False,
        "reason": "ndcg_10 0.7900 is below the serving model's 0.8000 - max_regression 0.0100",
        "difference": {"metric": "ndcg_10", "mean": -0.01, "ci95": [-0.04, 0.02]},
    }
    if slices:
        evaluation["slices"] = [
            {
                "slice": "list_length",
                "value": value,
                "lists": lists,
                "candidate": {"ndcg_10": c},
                "baseline": {"ndcg_10": b},
                "difference": {"metric": "ndcg_10", "mean": c - b, "ci95": [c - b - 0.03, c - b + 0.03]},
            }
            for value, lists, c, b in (("1-10", 10, 0.81, 0.80), ("11+", 14, 0.77, 0.80))
        ] + [
            {
                "slice": "span",
                "value": "2",
                "lists": 24,
                "candidate": {"ndcg_10": 0.79},
                "baseline": None,
                "difference": None,
            }
        ]
    return RunData(
        run_id="run-1",
        pipeline_name="ltr",
        metadata_path="/md.sqlite",
        created_ms=0,
        executions=[],
        tuner=TunerData(
            [{"trial_id": "0", "score": 0.7, "loss": "softmax_loss"}, {"trial_id": "1", "score": 0.75, "loss": "x"}],
            "val_ndcg_10",
            {"algorithm": "random", "max_trials": 2},
            {"loss": "x"},
            "this run's Tuner",
            "/tuner",
        ),
        training=TrainingData(
            {"best_epoch": 2, "epochs_run": 3, "validation_history": [0.7, 0.8, 0.78]},
            {
                "train": {"loss": [(1, 1.0), (2, 0.8), (3, 0.7)]},
                "validation": {"loss": [(1, 1.1), (2, 0.9), (3, 0.95)]},
            },
            "/model_run",
        ),
        evaluation=evaluation,
        examples=[
            ExamplesData(
                2,
                "/examples",
                2,
                None,
                {
                    "rows_read": 100,
                    "bad_rows": 2,
                    "bad_row_fraction": 0.02,
                    "dead_letter": {"bad_value": 2},
                    "splits": {"train": {"lists": 6, "documents": 60}, "test": {"lists": 4, "documents": 38}},
                    "list_size": {
                        "count": 10,
                        "mean": 9.8,
                        "p50": 10,
                        "p90": 12,
                        "max": 12,
                        "histogram": {"8": 3, "10": 4, "12": 3},
                    },
                    "missing_values": {"price": 7, "rating": 0},
                },
                ["ElwcExampleGen"],
            )
        ],
        registration={"pushed": False, "reason": "not blessed: …", "backend": "local", "model_name": "ranker"},
    )


def _svgs(page: str) -> list[ET.Element]:
    return [parse(m) for m in re.findall(r"<svg .*?</svg>", page, flags=re.S)]


def test_the_page_shows_every_section_and_every_chart_has_data():
    page = render_run(synthetic_run())
    for anchor in ("evaluation", "slices", "tuner", "training", "data", "lineage", "run"):
        assert f'<section id="{anchor}">' in page
    charts = _svgs(page)
    titles = [c.find(f"{NS}title").text for c in charts]
    assert titles == [
        "Candidate vs baseline per metric on the test split",
        "Candidate − baseline NDCG@10, 95% bootstrap interval",
        "NDCG@10 by list_length",
        "NDCG@10 by span",
        "Tuner trials",
        "Training and validation loss",
        "Training and validation NDCG@10",
        "Documents per list",
        "Missing values per feature",
        "Dead letter by reason",
    ]
    assert all(data_marks(c) for c in charts)
    forest = charts[1]
    rows = [d.find(f"{NS}title").text.split(":")[0] for d in data_marks(forest, "circle")]
    assert rows == ["all lists (24)", "list_length = 1-10 (10)", "list_length = 11+ (14)"]  # span has no interval
    assert "Not blessed" in page and "Not registered" in page
    # Only features with missing values get a bar; the others are named in the caption.
    assert len(data_marks(charts[8], "rect")) == 1 and "No missing values in: rating" in page
    # Nothing is fetched at view time: no scripts, style sheets, images or fonts from anywhere.
    assert not re.search(r"<(script|link|img|iframe)\b|url\(|@import", page)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_gate_thresholds_follow_the_recorded_gate():
    evaluation = synthetic_run().evaluation
    values = dict((label, value) for value, label in gate_thresholds(evaluation))
    assert values == {"logged order + 0.010": pytest.approx(0.39), "baseline − 0.010": pytest.approx(0.79)}
    evaluation["gate"]["min_value"] = 0.5
    evaluation["baseline"] = None
    assert [label for _, label in gate_thresholds(evaluation)] == ["logged order + 0.010", "min_value"]


def test_no_slices_in_the_evaluation_means_no_slices_section():
    page = render_run(synthetic_run(slices=False))
    assert 'id="slices"' not in page and "NDCG@10 by" not in page
    # The overall interval is still drawn.
    assert "Candidate − baseline NDCG@10, 95% bootstrap interval" in page


def test_versions_page_plots_each_metric_over_versions():
    from pipeline.run_report.read import VersionData

    versions = [
        VersionData(1, "2026-01-01", False, {"ndcg_10": 0.7, "mrr": 0.9}, [1], "run-1", "5", "/r/1"),
        VersionData(2, "2026-01-02", True, {"ndcg_10": 0.72, "mrr": 0.91}, [2], "run-2", "9", "/r/2"),
    ]
    page = render_versions("ranker", "local", versions, {"run-2": "../run-2/index.html"})
    (chart,) = _svgs(page)
    assert len(data_marks(chart, "circle")) == 4 and len(data_marks(chart, "polyline")) == 2
    assert "served: version 2" in texts(chart)
    assert 'href="../run-2/index.html"' in page


def test_the_report_package_imports_no_tensorflow():
    code = (
        "import sys; import pipeline.run_report.read, pipeline.run_report.render, pipeline.run_report; "
        "bad = [m for m in ('tensorflow', 'tfx.components', 'apache_beam') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
