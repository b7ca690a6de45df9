"""Every kind of message has its header fields declared (nbfl.protocol.messages), and every
``wire.message(MessageKind.X, ..., key=...)`` in nbfl sends only keys its kind declares:
read from the sources with ``ast``. Headers built as dicts are annotated with their
kind's TypedDict, which mypy checks."""

import ast
from pathlib import Path

from nbfl.protocol import wire
from nbfl.protocol.messages import FIELDS
from nbfl.protocol.names import MessageKind

ROOT = Path(__file__).resolve().parents[2] / "nbfl"


def sent(source: str) -> list[tuple[int, str, set[str]]]:
    """(line, kind, keyword names) of each ``message(MessageKind.X, ...)`` call in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        kind = node.args[0]
        if name == "message" and isinstance(kind, ast.Attribute) and getattr(kind.value, "id", "") == "MessageKind":
            found.append((node.lineno, kind.attr, {k.arg for k in node.keywords if k.arg is not None}))
    return found


def test_every_kind_the_wire_accepts_has_its_fields_declared():
    assert set(FIELDS) == set(MessageKind) == wire.KINDS


def test_every_message_nbfl_builds_sends_only_the_fields_of_its_kind():
    calls = [(path, *call) for path in sorted(ROOT.rglob("*.py")) for call in sent(path.read_text())]
    assert len(calls) >= 15  # the reader finds nbfl's messages
    wrong = [
        f"{path.relative_to(ROOT.parent)}:{line}: {kind} sends {sorted(keys - FIELDS[MessageKind[kind]].__annotations__.keys())}"
        for path, line, kind, keys in calls
        if not keys <= FIELDS[MessageKind[kind]].__annotations__.keys()
    ]
    assert wrong == []


def test_the_reader_sees_a_field_a_kind_does_not_declare():
    [(line, kind, keys)] = sent("wire.message(MessageKind.BYE, reason='x', colour='red')\n")
    assert (line, kind, keys) == (1, "BYE", {"reason", "colour"})
    assert not keys <= FIELDS[MessageKind.BYE].__annotations__.keys()


def test_a_name_is_its_plain_string_in_every_form():
    """A StrEnum member goes where a string went (the wire, JSON, logs, a printed list) unchanged."""
    import json

    from nbfl.protocol.names import ClientState, DataKind
    from nbfl.protocol.records import RoundStatus

    for member, text in ((MessageKind.JOIN, "join"), (ClientState.IDLE, "idle"), (DataKind.WEIGHTS, "WEIGHTS")):
        assert member == text and str(member) == f"{member}" == "%s" % member == text
        assert repr([member]) == repr([text]) and json.dumps({"k": member}) == json.dumps({"k": text})
    assert repr(RoundStatus.OK) == "'ok'"
