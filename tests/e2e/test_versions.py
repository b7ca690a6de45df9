"""The course on the versions people have: Binder's own Jupyter stack and the oldest
versions pyproject.toml allows, each environment built from scratch
(tests/environments.py), then 01, 04 and 06 executed with nbclient and checked as the
course tests check them on the newest versions."""

import pytest
from packaging.version import Version

import environments
from helpers import check_privacy, check_quickstart, check_statistics, execute

ENVIRONMENTS = ["binder", "oldest"]
COURSE = {
    "01_quickstart.ipynb": (check_quickstart, {"ROUNDS": 10, "CLIENTS": 4}),
    "04_privacy.ipynb": (check_privacy, {"ROUNDS": 4, "NOISE": [0.2, 1.0]}),
    "06_statistics_and_evaluation.ipynb": (
        check_statistics,
        {"CLIENTS": 3, "ALPHA": 0.3, "ROUNDS": 2, "EPOCHS": 2, "BINS": 5},
    ),
}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_has_the_versions_it_stands_for(env):
    """pip kept the pins while installing binder/requirements.txt (repo2docker's order), so
    the notebooks below really ran on those versions."""
    pins = dict(pin.split("==") for pin in environments.recipe(env))
    have = environments.versions(env, list(pins))
    for package, wanted in pins.items():
        assert Version(have[package]) == Version(wanted), (package, wanted, have[package])  # "8" is 8.0.0


@pytest.mark.parametrize("notebook", sorted(COURSE))
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_course_notebook_runs_on(env, notebook):
    check, parameters = COURSE[notebook]
    check(execute(notebook, env, **parameters))
