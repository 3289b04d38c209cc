"""Reading metrics back: every value of a series, series in `runs show`, compare, filter and sort,
and the ingest path they are stored by."""

from __future__ import annotations

import csv
import io
import json

from support import write_script

from mltrain.cli.metrics import sparkline
from mltrain.runs.ingest import MetricsIngest
from mltrain.workspace import Workspace

SCRIPT = """
import sys
from mltrain import Run
run = Run.get_context()
c = float(sys.argv[sys.argv.index("--C") + 1])
for step in range(5):
    run.log("loss", 1.0 / (step + 1) / c, step=step)
run.log("accuracy", min(0.99, 0.8 + c / 10))
run.log("kernel", "rbf" if c > 1 else "linear")
run.tag("stage", "tuned" if c > 1 else "baseline")
"""


def _train(mltrain, c: float) -> None:
    args = ("environment=system", "~register", "job.source_dir=src", "job.script=train.py")
    proc = mltrain(*args, f"job.arguments=[--C,{c}]", "experiment_name=tune")
    assert proc.returncode == 0, proc.output


def test_series_history_compare_filter_and_sort(mltrain, cli, cli_json, project):
    write_script(project / "src", "train.py", SCRIPT)
    for c in (0.5, 1.0, 2.0):
        _train(mltrain, c)
    runs = cli_json("runs", "list")
    by_c = {r["arguments"][1]: r["id"] for r in runs}
    low, mid, high = by_c["0.5"], by_c["1.0"], by_c["2.0"]

    history = cli_json("runs", "metrics", high, "loss")
    assert [(r["step"], r["value"]) for r in history] == [(s, 1.0 / (s + 1) / 2.0) for s in range(5)]
    assert all(r["time"] > 0 for r in history)
    rows = list(csv.DictReader(io.StringIO(cli("runs", "metrics", high, "--csv").stdout)))
    assert {r["name"] for r in rows} == {"loss", "accuracy", "kernel"} and len(rows) == 7
    missing = cli("runs", "metrics", high, "nope")
    assert missing.returncode != 0 and "no metric 'nope'" in missing.stderr and "accuracy" in missing.stderr

    shown = cli("runs", "show", high).stdout
    series = shown.split("Series", 1)[1]
    assert next(x for x in series.splitlines() if x.startswith("loss")).split() == ["loss", "5", "0.1", "0.1", "0.5"]
    assert json.loads(cli("runs", "show", high, "--json").stdout)["series"][0] == {
        "key": "loss",
        "count": 5,
        "last": 0.1,
        "min": 0.1,
        "max": 0.5,
    }

    assert [r["id"] for r in cli_json("runs", "list", "--where", "accuracy>0.86")] == [high, mid]
    assert [r["id"] for r in cli_json("runs", "list", "--where", "kernel=linear")] == [mid, low]
    assert [r["id"] for r in cli_json("runs", "list", "--tag", "stage=tuned")] == [high]
    assert [r["id"] for r in cli_json("runs", "list", "--sort", "accuracy")] == [high, mid, low]
    assert [r["id"] for r in cli_json("runs", "list", "--sort", "accuracy", "--asc", "-n", "1")] == [low]
    bad = cli("runs", "list", "--where", "accuracy")
    assert bad.returncode == 2 and "cannot read the filter" in bad.stderr

    table = cli("runs", "compare", low, high).stdout
    line = next(x for x in table.splitlines() if "--C" in x)
    assert line.startswith("*") and "0.5" in line and "2.0" in line
    compared = cli_json("runs", "compare", low, high)
    assert compared[1]["arguments"] == {"C": "2.0"} and compared[1]["metrics"]["kernel"] == "rbf"


def test_ingest_routes_parent_records_and_survives_nan(project):
    ws = Workspace.open(str(project / ".mltrain"))
    ws.runs.create("parent", "e")
    ws.runs.create("child", "e", parent_run_id="parent")
    ingest = MetricsIngest(ws, "child")
    lines = [
        b'{"t":1.0,"k":"a","v":1.5,"s":0}',
        b'{"t":1.1,"k":"best","v":0.9,"r":"parent"}',
        b'{"t":1.2,"k":"x","v":2,"r":"someone-else"}',
        b'{"t":1.3,"type":"tags","v":{"phase":"sweep"},"r":"parent"}',
        b'{"t":1.4,"type":"register","k":"m","v":{"name":"m","path":"outputs/m.joblib"}}',
        b'{"t":1.5,"k":"a","v":NaN,"s":1}',
    ]
    data = b"\n".join(lines) + b"\n"
    ingest.feed(data[:50])  # a partial record waits for the rest
    ingest.feed(data[50:])
    assert ingest.feed(b"", final=True) == 4
    assert ws.metrics.summary("parent") == {"best": 0.9}
    assert [r["key"] for r in ws.metrics.history("child")] == ["a", "x", "a"]
    assert ws.runs.tags("parent") == {"phase": "sweep"}
    assert ingest.register_requests == [{"name": "m", "path": "outputs/m.joblib"}]


def test_ingest_stores_every_kind_as_the_python_path_would(project):
    ws = Workspace.open(str(project / ".mltrain"))
    ws.runs.create("r1", "e")
    ingest = MetricsIngest(ws, "r1")
    recs = [
        {"t": 1.0, "k": "n", "v": 3},
        {"t": 1.0, "k": "s", "v": "text"},
        {"t": 1.0, "k": "b", "v": True},
        {"t": 1.0, "type": "list", "k": "l", "v": [1, 2]},
        {"t": 1.0, "type": "row", "k": "rows", "v": {"a": 1}},
        {"t": 1.0, "type": "table", "k": "t", "v": {"c": [1]}},
        {"t": 1.0, "type": "image", "k": "img", "v": {"artifact": "images/x.png"}},
    ]
    ingest.feed(b"\n".join(json.dumps(r).encode() for r in recs) + b"\n", final=True)
    assert ws.metrics.summary("r1") == {
        "n": 3.0,
        "s": "text",
        "b": True,
        "l": [1, 2],
        "rows": {"a": [1]},
        "t": {"c": [1]},
        "img": {"artifact": "images/x.png"},
    }


def test_series_sampled_for_a_sparkline(project):
    ws = Workspace.open(str(project / ".mltrain"))
    ws.runs.create("r1", "e")
    ws.metrics.add("r1", [{"t": 1.0, "k": "loss", "v": 100.0 - i, "s": i} for i in range(1000)])
    points = ws.metrics.sampled("r1", "loss", points=8)
    assert len(points) == 8 and points == sorted(points, reverse=True)
    assert sparkline(points) == "█▇▆▅▄▃▂▁" and sparkline([1.0, 1.0]) == "▁▁"
