"""What one run decides for itself, in one dataclass that Python, the magics and the CLI share.

A run owns its settings (``Controller.start(rounds, workflow, settings)``): quorum,
timeouts, the filters clients apply, the codec. :class:`RunSettings` names each once,
with its default and its help; :func:`add_arguments` gives ``%fl_round`` and
``nbfl controller`` the same options from it, and :func:`from_arguments` reads them back.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..protocol.compress import CODECS, check_codec


def _number(text: str) -> Any:
    """A ``KEY=VALUE`` value: an int or a float when it reads as one, else the text."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as a number when it is one: ``mu=0.1``, ``order=shuffled``."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValueError(f"expects KEY=VALUE, got {text!r}")
    return key, _number(value)


def filter_spec(text: str) -> dict[str, Any]:
    """``dp:clip=0.5,noise_multiplier=1.0`` -> ``{"name": "dp", "clip": 0.5, "noise_multiplier": 1.0}``."""
    name, _, params = text.partition(":")
    return {"name": name, **dict(option(p) for p in params.split(",") if p)}


@dataclass(frozen=True)
class RunSettings:
    """One run's settings; ``Controller.start`` checks them before the run begins."""

    min_clients: int = field(default=1, metadata={"help": "connected clients a round starts with", "type": int})
    min_results: int | None = field(
        default=None, metadata={"help": "results that close a round, its quorum (default: --min-clients)", "type": int}
    )
    grace: float | None = field(
        default=None, metadata={"help": "seconds to wait for slower clients once the quorum is in (default: for all)"}
    )
    timeout: float | None = field(default=None, metadata={"help": "seconds a round waits for results"})
    join_timeout: float | None = field(
        default=60.0, metadata={"help": "seconds a run waits for --min-clients to be connected", "cli": False}
    )
    filters: tuple[dict[str, Any], ...] = field(
        default=(),
        metadata={
            "help": "a filter every client applies to its updates, e.g. dp:clip=0.5,noise_multiplier=1.0",
            "flag": "--filter",
            "metavar": "NAME[:KEY=VALUE,...]",
            "action": "append",
        },
    )
    sample: float | None = field(
        default=None,
        metadata={"help": "clients each round trains: a count K, or a fraction of the connected ones (default: all)"},
    )
    sample_seed: int = field(
        default=0, metadata={"help": "seed of the sampling: the same seed picks the same clients", "type": int}
    )
    log_dir: str | None = field(
        default=None,
        metadata={
            "help": "write each round's scalars to this folder for TensorBoard (tensorboard --logdir)",
            "type": str,
        },
    )
    compress: str | None = field(  # None: the controller's codec; "none": no codec in this run
        default=None,
        metadata={"help": "the model and the updates on the wire (default: the controller's)", "choices": "codecs"},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.min_clients, int) or self.min_clients < 1:
            raise ValueError(f"min_clients must be at least 1, not {self.min_clients!r}")
        if self.min_results is not None and not 1 <= self.min_results:
            raise ValueError(f"min_results must be at least 1, not {self.min_results!r}")
        for name in ("grace", "timeout", "join_timeout"):
            value = getattr(self, name)
            if value is not None and not (0 <= value < math.inf):
                raise ValueError(f"{name} must be a number of seconds, not {value!r}")
        if self.sample is not None and not (
            0 < self.sample < 1 or (self.sample >= 1 and float(self.sample).is_integer())
        ):
            raise ValueError(
                f"sample must be a count of clients (1, 2, ...) or a fraction between 0 and 1, not {self.sample!r}"
            )
        object.__setattr__(self, "filters", tuple(dict(f) for f in self.filters or ()))  # None: none, as before
        check_codec(self.compress)  # a ValueError names the codecs there are

    @property
    def quorum(self) -> int:
        """Usable results a round needs: ``min_results``, else ``min_clients``."""
        return self.min_results if self.min_results is not None else self.min_clients

    def changed(self) -> dict[str, Any]:
        """The settings that differ from the defaults: what sets a run apart, for its label."""
        default = RunSettings()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }

    def sample_size(self, connected: int) -> int:
        """How many of ``connected`` clients a round trains: all, a count, or a fraction (at least one)."""
        if self.sample is None:
            return connected
        wanted = int(self.sample) if self.sample >= 1 else max(1, round(self.sample * connected))
        return min(wanted, connected)


def add_arguments(add: Callable[..., Any], *, help: dict[str, str] | None = None, skip: Sequence[str] = ()) -> None:
    """Declare the settings as command-line options through ``add(*flags, **kwargs)``
    (``ArgumentParser.add_argument``, or IPython's ``argument`` decorator). Options
    default to None (not given), so :func:`from_arguments` can tell the face's own
    defaults from what was typed; ``help`` replaces a setting's help, ``skip`` leaves some out."""
    for f in dataclasses.fields(RunSettings):
        meta = f.metadata
        if f.name in skip or meta.get("cli") is False:
            continue
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kwargs: dict[str, Any] = {"dest": f.name, "help": (help or {}).get(f.name, meta["help"])}
        if meta.get("action"):
            kwargs.update(action=meta["action"], metavar=meta["metavar"])
        elif meta.get("choices") == "codecs":
            kwargs["choices"] = ["none", *CODECS]
        else:
            kwargs["type"] = meta.get("type", float)
        add(flag, **kwargs)


def from_arguments(args: Any, **defaults: Any) -> RunSettings:
    """The settings parsed into ``args`` (by :func:`add_arguments`' options), falling back to
    ``defaults`` (the face's: the controller's --timeout, say) and then the dataclass's.
    ValueError says what is wrong with one (a ``--filter`` that is not NAME:KEY=VALUE,...)."""
    given = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(RunSettings)}
    chosen = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    if chosen.get("filters") is not None:
        chosen["filters"] = tuple(filter_spec(f) if isinstance(f, str) else f for f in chosen["filters"])
    return RunSettings(**{k: v for k, v in chosen.items() if v is not None})
