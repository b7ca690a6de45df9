"""The Federation panel's TypeScript (extensions/federation/src/api.ts) declares the same
status shapes as nbfl.protocol.panel and the same states as nbfl.protocol.names: read
from the TypeScript source, compared field by field, type by type, value by value."""

import re
import types
import typing
from enum import Enum
from pathlib import Path

from nbfl.controller.status import panel_actions
from nbfl.protocol import names, panel

API = Path(__file__).resolve().parents[2] / "extensions" / "federation" / "src" / "api.ts"
INTERFACES = {
    "IRun": panel.Run,
    "IClient": panel.Client,
    "IHistoryRow": panel.HistoryRow,
    "IDefense": panel.Defense,
    "IControllerStatus": panel.ControllerStatus,
    "IParticipantStatus": panel.ParticipantStatus,
}
STATES = {"RunState": names.RunState, "ClientState": names.ClientState, "ParticipantState": names.ParticipantState}
ALIASES = {"Metrics": panel.Metrics}


def interfaces(source: str) -> dict[str, dict[str, tuple[str, bool]]]:
    """``{interface: {field: (type text, optional)}}`` of the exported interfaces."""
    source = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)  # comments out
    out = {}
    for name, body in re.findall(r"export interface (\w+)[^{]*\{(.*?)\n\}", source, flags=re.S):
        fields = re.findall(r"^\s*(\w+)(\??):\s*([^;]+);", body, flags=re.M)
        out[name] = {field: (" ".join(kind.split()), optional == "?") for field, optional, kind in fields}
    return out


def unions(source: str) -> dict[str, set[str]]:
    """``{type: {values}}`` of the exported unions of string literals."""
    return {
        name: set(re.findall(r"'([^']*)'", body))
        for name, body in re.findall(r"export type (\w+) =\s*((?:'[^']*'\s*\|?\s*)+);", source)
    }


def ts(kind: object) -> str:
    """How ``kind`` (a Python type hint) reads in the panel's TypeScript."""
    for name, alias in ALIASES.items():
        if kind == alias:
            return name
    for name, typed in {**INTERFACES, **STATES}.items():
        if kind is typed:
            return name
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(ts(a) for a in args)
    if origin is list:
        return f"{ts(args[0])}[]"
    if origin is tuple:
        return "[" + ", ".join(ts(a) for a in args) + "]"
    simple = {str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
    assert kind in simple, f"no TypeScript for {kind!r}"
    return simple[kind]  # type: ignore[index]


def test_every_status_shape_is_declared_alike_in_python_and_typescript():
    declared = interfaces(API.read_text())
    for name, shape in INTERFACES.items():
        hints = typing.get_type_hints(shape)
        python = {field: (ts(kind), field in shape.__optional_keys__) for field, kind in hints.items()}
        assert declared[name] == python, name


def test_every_state_has_the_same_values_in_python_and_typescript():
    declared = unions(API.read_text())
    for name, enum in STATES.items():
        assert issubclass(enum, Enum) and declared[name] == {member.value for member in enum}, name


def test_the_panels_actions_are_the_controllers_and_the_participants_leave():
    declared = unions(API.read_text())["Action"]
    client = (Path(names.__file__).parents[1] / "participant" / "client.py").read_text()
    participant = set(re.findall(r'"(\w+)": self\._panel_\w+', client))
    assert participant == {"leave"} and declared == set(panel_actions(None)) | participant  # type: ignore[arg-type]


def test_the_reader_sees_what_it_should():
    source = "export type S = 'a' | 'b';\nexport interface IX extends Y {\n  /** a */\n  x?: number | null;\n  y: Metrics[];\n}\n"
    assert interfaces(source) == {"IX": {"x": ("number | null", True), "y": ("Metrics[]", False)}}
    assert unions(source) == {"S": {"a", "b"}}
    assert ts(list[tuple[str, int]]) == "[string, number][]" and ts(panel.Run | None) == "IRun | null"
