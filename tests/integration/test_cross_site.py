"""Cross-site evaluation over real sockets: three in-process clients on 127.0.0.1.

Every number is a binary fraction, so the whole matrix is checked exactly: client
``name`` submits the global model shifted by ``SHIFT[name]``; a site scores a model as
``mean(w) * SCALE[site]``, with the scale as the site's local data.
"""

import numpy as np

import nbfl
from nbfl.notebook.plots import cross_site_png
from nbfl.protocol.names import DataKind
from nbfl.workflows import CrossSiteEval

SHIFT = {"a": 1.0, "b": 2.0, "c": 3.0}
SCALE = {"a": 1.0, "b": 2.0, "c": 4.0}
BASE = 0.25  # every entry of the global model


def global_model():
    return {"w": np.full((2, 3), BASE, np.float32), "b": np.full(3, BASE, np.float32)}


def submit(weights, ctx):
    return {k: v + np.float32(SHIFT[ctx.client]) for k, v in weights.items()}


def validate(weights, ctx):
    return nbfl.Update({}, kind=DataKind.METRICS, metrics={"accuracy": float(weights["w"].mean()) * ctx.data})


def expected():
    rows = [[(BASE + SHIFT[m]) * SCALE[s] for s in "abc"] for m in "abc"]
    return np.array([*rows, [BASE * SCALE[s] for s in "abc"]])


def start(controller_factory, client_factory, tasks=None):
    ctl = controller_factory(global_model())
    for name in "cab":  # joined out of order: rows and columns still come sorted
        client_factory(
            ctl.endpoint,
            name,
            tasks=(tasks or {}).get(name, {"submit_model": submit, "validate": validate}),
            data=SCALE[name],
        )
    ctl.wait_for_clients(3, timeout=30)
    return ctl


def test_full_matrix_labels_and_unchanged_global_model(controller_factory, client_factory):
    ctl = start(controller_factory, client_factory)
    flow = CrossSiteEval()
    record = ctl.run(1, flow, min_clients=3, timeout=30)[0]
    assert record.status == "ok" and record.workflow == "cross_site" and not record.failed
    assert flow.matrix is not None
    assert flow.matrix.models == ["a", "b", "c", "global"] and flow.matrix.sites == ["a", "b", "c"]
    np.testing.assert_array_equal(flow.matrix.values, expected())
    assert record.notes["cross_site"] == {
        "models": ["a", "b", "c", "global"],
        "sites": ["a", "b", "c"],
        "metric": "accuracy",
        "values": expected().tolist(),
    }
    for name, value in global_model().items():
        np.testing.assert_array_equal(ctl.weights[name], value)
    png = cross_site_png(**record.notes["cross_site"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_failed_validation_leaves_one_nan_cell(controller_factory, client_factory):
    def picky(weights, ctx):
        if weights["w"].mean() == BASE:
            raise RuntimeError("cannot read the global model")
        return validate(weights, ctx)

    ctl = start(controller_factory, client_factory, {"c": {"submit_model": submit, "validate": picky}})
    flow = CrossSiteEval()
    record = ctl.run(1, flow, timeout=30)[0]
    want = expected()
    want[3, 2] = np.nan  # the global model on site c
    np.testing.assert_array_equal(flow.matrix.values, want)
    assert record.status == "ok" and "cannot read the global model" in record.failed["c"]
    assert record.notes["cross_site"]["values"][3] == [BASE * SCALE["a"], BASE * SCALE["b"], None]
    assert cross_site_png(**record.notes["cross_site"]).startswith(b"\x89PNG")


def test_a_bad_submitted_model_is_rejected_and_its_row_left_empty(controller_factory, client_factory):
    def nan_model(weights, ctx):
        return {k: np.full_like(v, np.nan) for k, v in weights.items()}

    ctl = start(controller_factory, client_factory, {"b": {"submit_model": nan_model, "validate": validate}})
    flow = CrossSiteEval()
    record = ctl.run(1, flow, timeout=30)[0]
    want = expected()
    want[1] = np.nan
    np.testing.assert_array_equal(flow.matrix.values, want)
    assert record.status == "ok" and "NaN" in record.failed["b"]


def test_no_answer_to_validation_fails_the_round(controller_factory, client_factory):
    def broken(weights, ctx):
        raise RuntimeError("no data here")

    tasks = {"submit_model": submit, "validate": broken}
    ctl = start(controller_factory, client_factory, dict.fromkeys("abc", tasks))
    record = ctl.run(1, CrossSiteEval(), timeout=30)[0]
    assert record.status == "failed" and "cross_site" not in record.notes
    np.testing.assert_array_equal(ctl.weights["w"], global_model()["w"])
