"""A run's history as tables (nbfl.results): the rows, a pandas DataFrame, CSV and JSON."""

import csv
import json

import pandas as pd
import pytest

from nbfl.protocol.records import RoundRecord, RoundStatus
from nbfl.results import clients, export, frame, rounds

HISTORY = [
    RoundRecord(1, "fedavg", metrics={"accuracy": 0.5}, clients={"a": {"loss": 1.0}, "b": {"loss": 2.0}}, seconds=0.1),
    RoundRecord(
        2,
        "fedavg",
        RoundStatus.OK,
        metrics={"accuracy": float("nan")},
        clients={"a": {"loss": 0.5}},
        failed={"b": "Traceback ...\nValueError: no data\n"},
        sampled=["a", "b"],
        sample_seed=3,
    ),
]


def test_one_row_per_round_and_one_per_client_per_round():
    assert [(r["round"], r["clients"], r["failed"], r["sampled"]) for r in rounds(HISTORY)] == [
        (1, 2, 0, 0),
        (2, 1, 1, 2),
    ]
    assert rounds(HISTORY)[0]["metric_accuracy"] == 0.5
    rows = clients(HISTORY)
    assert [(r["round"], r["client"], r["status"]) for r in rows] == [
        (1, "a", "ok"),
        (1, "b", "ok"),
        (2, "a", "ok"),
        (2, "b", "failed"),
    ]
    assert rows[-1]["reason"].endswith("ValueError: no data") and rows[0]["loss"] == 1.0


def test_a_dataframe_of_either_table():
    table = frame(HISTORY)
    assert isinstance(table, pd.DataFrame) and list(table["round"]) == [1, 2]
    assert list(frame(HISTORY, per_client=True).groupby("round").size()) == [2, 2]


def test_csv_and_json_with_non_finite_metrics_left_empty(tmp_path):
    with open(export(HISTORY, tmp_path / "run.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["metric_accuracy"] for r in rows] == ["0.5", ""]
    data = json.loads(export(HISTORY, tmp_path / "run.json", per_client=True).read_text())
    assert len(data) == 4 and data[0] == {"round": 1, "client": "a", "status": "ok", "reason": "", "loss": 1.0}
    assert json.loads(export(HISTORY, tmp_path / "r.json").read_text())[1]["metric_accuracy"] is None
    with pytest.raises(ValueError, match="writes .csv or .json"):
        export(HISTORY, tmp_path / "run.parquet")
