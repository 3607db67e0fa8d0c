"""The JSON forms of a flag value (rollout.flagvalues): node output, events, backup manifests."""

from __future__ import annotations

import base64
import json

import pytest

from rollout.flagvalues import (
    BadFlagValue,
    event_flags,
    from_manifest,
    from_node,
    manifest_flags,
    node_text,
    shown_flags,
)
from rollout.models import Observed, Opaque
from rollout.output import FIELD_BYTES


def _other(text: str) -> dict[str, str]:
    return {"other": base64.b64encode(text.encode()).decode()}


# --- from a node ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("printed", "observed"),
    [
        (True, True),
        (False, False),
        (0, 0),
        (37, 37),
        ("absent", None),
        (None, None),
        (_other("%{a: 1}"), Opaque("%{a: 1}")),
        (_other("héllo"), Opaque("héllo")),
        ({"other": "not base64!"}, Opaque("<undecodable>")),
        ("on", Opaque('"on"')),
        (1.5, Opaque("1.5")),
        ([1, 2], Opaque("[1, 2]")),
        ({"other": 1}, Opaque('{"other": 1}')),
        ({"other": "YQ==", "x": 1}, Opaque('{"other": "YQ==", "x": 1}')),
    ],
)
def test_from_node(printed: object, observed: Observed) -> None:
    value = from_node(printed)
    assert value == observed
    assert type(value) is type(observed)  # True stays a bool, 1 an int


def test_node_text_shows_any_json_value() -> None:
    assert node_text(_other(":error")) == ":error"
    assert node_text("boom") == '"boom"'
    assert node_text(None) == "null"


# --- for events, the ledger and reports ----------------------------------------------------


def test_event_flags_keep_values_and_show_opaque_as_text() -> None:
    flags: dict[str, Observed] = {"a": True, "b": 25, "c": None, "d": Opaque("%{x: 1}")}
    assert event_flags(flags) == {"a": True, "b": 25, "c": None, "d": "unexpected value %{x: 1}"}
    assert shown_flags(flags) == event_flags(flags)
    assert list(event_flags({"z": 1, "a": 2})) == ["z", "a"]  # the caller's order


def test_event_flags_clip_a_long_opaque_value_and_reports_do_not() -> None:
    text = "x" * (FIELD_BYTES * 2)
    clipped = event_flags({"a": Opaque(text)})["a"]
    assert isinstance(clipped, str)
    assert clipped.endswith(" bytes cut]") and len(clipped) < FIELD_BYTES + 40
    assert shown_flags({"a": Opaque(text)}) == {"a": f"unexpected value {text}"}


# --- in a backup manifest ------------------------------------------------------------------


def test_manifest_round_trip() -> None:
    flags: dict[str, Observed] = {"b": 10, "a": False, "c": None, "d": Opaque("{:ok, 1}")}
    stored = manifest_flags(flags)
    assert stored == {"a": False, "b": 10, "c": None, "d": {"opaque": "{:ok, 1}"}}
    assert list(stored) == ["a", "b", "c", "d"]  # sorted by name
    assert from_manifest(json.loads(json.dumps(stored)), "hosts.web1.flags") == flags


@pytest.mark.parametrize(
    ("raw", "message", "key"),
    [
        ([], "flags must be an object", "hosts.web1.flags"),
        (None, "flags must be an object", "hosts.web1.flags"),
        ({"a": 1.5}, "flag value 1.5 is not a boolean, integer or null", "hosts.web1.flags.a"),
        ({"a": "on"}, "flag value 'on' is not a boolean, integer or null", "hosts.web1.flags.a"),
        ({"ok": 1, "b": {"opaque": "x", "more": 1}},
         "flag value {'opaque': 'x', 'more': 1} is not a boolean, integer or null",
         "hosts.web1.flags.b"),  # fmt: skip
    ],
)
def test_from_manifest_names_the_key_of_a_bad_value(raw: object, message: str, key: str) -> None:
    with pytest.raises(BadFlagValue) as caught:
        from_manifest(raw, "hosts.web1.flags")
    assert caught.value.message == message
    assert caught.value.key == key
    assert str(caught.value) == message
