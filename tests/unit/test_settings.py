"""A run's settings are one dataclass (nbfl.controller.settings.RunSettings) that Python,
%fl_round and the nbfl command line all read: the same options from one declaration,
checked in one place."""

import argparse

import pytest
from IPython.core.magic_arguments import parse_argstring

import nbfl.cli
from nbfl.controller.settings import RunSettings, add_arguments, from_arguments
from nbfl.notebook.magics.runs import RunMagics

LINE = ["--min-results", "2", "--grace", "1.5", "--timeout", "30", "--filter", "dp:clip=0.5", "--compress", "int16"]
LINE += ["--sample", "5", "--sample-seed", "2"]


def test_the_cli_and_the_magic_read_the_same_settings_from_the_same_flags():
    cli = from_arguments(nbfl.cli.build_parser().parse_args(["demo", *LINE]), min_clients=3, timeout=120.0)
    magic = from_arguments(parse_argstring(RunMagics.fl_round, "4 --min-clients 3 " + " ".join(LINE)))
    expected = RunSettings(
        min_clients=3,
        min_results=2,
        grace=1.5,
        timeout=30.0,
        filters=({"name": "dp", "clip": 0.5},),
        compress="int16",
        sample=5,
        sample_seed=2,
    )
    assert cli == magic == expected and expected.quorum == 2
    assert expected.sample_size(40) == 5 and RunSettings(sample=0.1).sample_size(40) == 4


def test_what_a_face_leaves_out_comes_from_its_defaults_then_the_dataclass():
    parser = argparse.ArgumentParser()
    add_arguments(parser.add_argument)
    settings = from_arguments(parser.parse_args([]), timeout=120.0)
    assert settings == RunSettings(timeout=120.0) and settings.quorum == 1 and settings.join_timeout == 60.0
    assert from_arguments(parser.parse_args(["--compress", "none"])).compress == "none"  # off, not the controller's
    assert RunSettings(filters=None).filters == ()  # type: ignore[arg-type]  # as start(..., filters=None) always meant


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"min_clients": 0}, "min_clients must be at least 1"),
        ({"min_results": 0}, "min_results must be at least 1"),
        ({"timeout": -1.0}, "timeout must be a number of seconds"),
        ({"grace": float("nan")}, "grace must be a number of seconds"),
        ({"compress": "zstd"}, "unknown compression 'zstd'"),
    ],
)
def test_bad_settings_are_refused_with_what_is_wrong(fields, message):
    with pytest.raises(ValueError, match=message):
        RunSettings(**fields)


def test_a_filter_that_is_not_name_key_value_says_so():
    parser = argparse.ArgumentParser()
    add_arguments(parser.add_argument)
    with pytest.raises(ValueError, match="expects KEY=VALUE, got 'clip'"):
        from_arguments(parser.parse_args(["--filter", "dp:clip"]))
