"""One root for nbfl's errors: every exception class nbfl defines derives from NbflError
(and keeps its built-in base), so ``except nbfl.NbflError`` catches whatever nbfl refused."""

import importlib
import inspect
import pkgutil

import pytest

import nbfl
from nbfl.errors import NbflError


def nbfl_modules():
    """Every module of nbfl that imports here (one needing a package this install lacks is skipped)."""
    found = []
    for info in pkgutil.walk_packages(nbfl.__path__, "nbfl."):
        if info.name.endswith("__main__"):  # running it is the command line
            continue
        try:
            found.append(importlib.import_module(info.name))
        except ImportError:
            continue
    return found


def test_every_error_nbfl_defines_derives_from_nbfl_error():
    defined = [
        cls
        for module in nbfl_modules()
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == module.__name__
    ]
    assert len(defined) >= 14, [c.__name__ for c in defined]
    outside = [f"{c.__module__}.{c.__name__}" for c in defined if not issubclass(c, NbflError)]
    assert outside == []


def test_the_root_keeps_the_built_in_bases_callers_already_catch():
    from nbfl.protocol.wire import WireError, decode

    with pytest.raises(NbflError) as caught:
        decode([b"not a header"])
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, WireError)
    assert issubclass(nbfl.controller.run.RunError, RuntimeError) and nbfl.NbflError is NbflError
