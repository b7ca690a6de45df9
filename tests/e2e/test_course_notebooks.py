"""The course notebooks 05 and 06, executed for real, and what every course notebook needs.

The helpers come from test_notebooks.py (tests/ has no __init__.py, so pytest's default
"prepend" import mode puts it on sys.path), so these notebooks run exactly as the others do.
"""

import re
from pathlib import Path

import nbformat
import pytest

from helpers import NOTEBOOKS, check_statistics, errors_of, execute, html_of, outputs, text_of

SEED = Path(__file__).resolve().parents[1] / "seed"


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_course_notebook_has_a_parameters_cell(name):
    """The tests (and papermill users) shrink a notebook through its cell tagged `parameters`."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert tagged, f"{name} has no cell tagged parameters"
    assert all(c.cell_type == "code" for c in tagged), f"{name}: a markdown cell is tagged parameters"


def test_course_readme_lists_every_notebook_in_order():
    readme = (NOTEBOOKS / "README.md").read_text()
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    positions = [readme.find(n) for n in names]
    assert all(p >= 0 for p in positions), [n for n, p in zip(names, positions) if p < 0]
    assert positions == sorted(positions), "the README lists the notebooks out of order"


def test_course_executor_notebook_shows_the_seed_trainer_verbatim():
    """What the learner reads is the seed's trainer, only its imports changed (tests/seed is the reference)."""
    nb = nbformat.read(NOTEBOOKS / "05_bring_your_own_executor.ipynb", as_version=4)
    written = {}
    for cell in nb.cells:
        first, _, body = cell.source.partition("\n")
        if cell.cell_type == "code" and first.startswith("%%writefile"):
            written[first.rsplit("/", 1)[-1]] = body
    assert written.keys() == {"simple_network.py", "simple_trainer.py"}
    for name, body in written.items():
        assert body.rstrip("\n") == (SEED / name).read_text().rstrip("\n"), f"{name} differs from tests/seed/{name}"


def test_course_executor_notebook_trains_the_flare_trainer_through_nbfl():
    nb = execute("05_bring_your_own_executor.ipynb", CLIENTS=2, ROUNDS=2, EPOCHS=1, IMAGES_PER_FILE=20)
    text = text_of(nb)
    assert not errors_of(nb), text
    # the diff shows nvflare/torchvision imports replaced by nbfl ones, and nothing else
    diff = re.findall(r"^([-+])(from \S+)", text, re.M)
    assert {m for s, m in diff if s == "-"} == {
        "from nvflare.apis.dxo",
        "from nvflare.apis.executor",
        "from nvflare.apis.fl_constant",
        "from nvflare.apis.fl_context",
        "from nvflare.apis.shareable",
        "from nvflare.apis.signal",
        "from nvflare.app_common.app_constant",
        "from torchvision.datasets",
        "from torchvision.transforms",
    }
    assert {m for s, m in diff if s == "+"} == {"from nbfl.participant.executor", "from nbfl.data.vision"}
    assert "same program apart from the imports: True" in text
    # the generated files are read back in CIFAR-10's format: 5 x 20 training, 20 test images
    assert re.findall(r"(site-\d): (\d+) training and (\d+) test images", text) == [
        ("site-1", "100", "20"),
        ("site-2", "100", "20"),
    ]
    by_hand = re.search(r"by hand: site-1 answered (\w+) for (\d+) tensors, NUM_STEPS_CURRENT_ROUND = (\d+)", text)
    assert by_hand and by_hand.groups() == ("WEIGHT_DIFF", "10", "25"), text  # 100 images in batches of 4
    rounds = re.findall(r"round (\d): (\w+), held-out accuracy ([\d.]+), sites site-1, site-2", text)
    assert [(r, s) for r, s, _ in rounds] == [("1", "ok"), ("2", "ok")], text
    sent = re.findall(r"last round, (site-\d) sent (\w+) with NUM_STEPS_CURRENT_ROUND = (\d+)", text)
    assert sorted(sent) == [("site-1", "WEIGHT_DIFF", "25"), ("site-2", "WEIGHT_DIFF", "25")]
    assert "rounds ok: 2, kinds: WEIGHT_DIFF" in text
    moved = re.search(r"global model moved: (\w+) \(largest change ([\d.]+)\)", text)
    assert moved and moved.group(1) == "True" and float(moved.group(2)) > 0
    assert "global model is the steps-weighted mean of the sites' models: True" in text
    assert "closed; the global model has 62006 parameters" in text


def test_course_statistics_notebook_checks_its_numbers_and_reads_the_heatmap():
    check_statistics(execute("06_statistics_and_evaluation.ipynb", CLIENTS=3, ALPHA=0.3, ROUNDS=2, EPOCHS=2, BINS=5))


def test_workshop_instructor_notebook_runs_a_room_of_its_own_sites():
    nb = execute("03_workshop_instructor.ipynb", CAPACITY=4, HOST="127.0.0.1", LOCAL_SITES=2, PARTICIPANTS=0, ROUNDS=3)
    assert not errors_of(nb)
    text, shown = text_of(nb), html_of(nb)
    assert re.search(
        r"class='nbfl-join-line'[^>]*>%fl_join nbfl://127\.0\.0\.1:\d+/[\w-]{43}/[\w-]+ --name YOUR_NAME --accept-code<",
        shown,
    )
    assert "participants: ['site-1', 'site-2']" in text
    assert "shares: ['1/4', '2/4']" in text  # the spawned sites joined with the line and were given shares
    accuracy = float(re.search(r"round 3: ok; global accuracy ([\d.]+)", text).group(1))
    assert accuracy > 0.5, text
    labels = next(c for c in nb.cells if c.source.startswith("%fl_labels"))
    assert any("image/png" in d for d, _ in outputs(labels))


def test_workshop_participant_notebook_joins_with_the_pasted_code():
    import threading

    import nbfl
    from nbfl.controller.workshop import Workshop
    from nbfl.participant.models import DigitsMLP

    with nbfl.Controller(weights=DigitsMLP(), workshop=Workshop(capacity=4, host="127.0.0.1")) as ctl:
        rounds = threading.Thread(target=lambda: ctl.run(2, join_timeout=300, timeout=300), daemon=True)
        rounds.start()  # waits for the participant, then trains two rounds with it
        line = f"%fl_join {ctl.join_code} --name YOUR_NAME --accept-code"  # the whole line, as copied
        nb = execute("03_workshop_participant.ipynb", JOIN_LINE=line, NAME="ada", WATCH_ROUNDS=2)
        rounds.join(300)
        assert not errors_of(nb)
        line = re.search(r"ada: share 1/4, (\d+) samples, 2 rounds done, local accuracy ([\d.]+)", text_of(nb))
        assert line and int(line.group(1)) > 0 and 0 < float(line.group(2)) <= 1, text_of(nb)
        assert [r.status for r in ctl.history] == ["ok", "ok"] and list(ctl.history[-1].clients) == ["ada"]


def test_simulation_notebook_compares_three_algorithms_on_the_same_sampled_clients():
    nb = execute("07_simulation.ipynb", CLIENTS=60, PER_PROCESS=30, SAMPLE=5, ROUNDS=3)
    text, shown = text_of(nb), html_of(nb)
    assert not errors_of(nb), text
    assert "60 clients: 60 idle" in shown  # two processes of thirty, each client its own at the controller
    assert "every round trained its 5 sampled clients: True; the same picks in each run: True" in text
    assert re.search(r"0\s+fedavg\s+[\d.]+", text) and re.search(r"2\s+scaffold\s+[\d.]+", text), text
    trained = int(re.search(r"(\d+) of 60 clients trained at least once", text).group(1))
    assert 5 <= trained <= 15  # three rounds of five, the same picks in every run
    for magic in ("%fl_labels", "%fl_compare"):
        cell = next(c for c in nb.cells if c.source.startswith(magic))
        assert any("image/png" in d for d, _ in outputs(cell)), magic
