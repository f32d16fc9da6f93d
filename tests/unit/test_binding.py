"""The binding file's format: signed by the station's derived key, parsed strictly from hostile bytes."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from agent.camera import binding
from agent.custody.keys import StationKey, key_id


def _station_key() -> StationKey:
    private = Ed25519PrivateKey.generate()
    return StationKey(private, key_id(private.public_key()))


KEY = _station_key().binding_key()


def test_a_signed_binding_reads_back_and_verifies_only_under_its_key() -> None:
    signed = binding.sign(KEY, "STATION-1", "CAM0001", "2026-12-07T03:00:00+00:00")
    parsed = binding.parse(signed.render())
    assert parsed == signed and parsed.signed_by(KEY)
    assert not parsed.signed_by(_station_key().binding_key())


@given(
    field=st.sampled_from(["station", "serial", "bound_at"]),
    value=st.from_regex(r"[!-<>-~]{1,20}", fullmatch=True),
)
def test_any_changed_field_breaks_the_signature(field: str, value: str) -> None:
    signed = binding.sign(KEY, "STATION-1", "CAM0001", "2026-12-07T03:00:00+00:00")
    changed = binding.Binding(**{**signed.__dict__, field: value})
    assert changed.signed_by(KEY) is (changed == signed)


def test_the_binding_key_is_derived_and_stable() -> None:
    key = _station_key()
    assert key.binding_key() == key.binding_key()
    assert len(key.binding_key()) == 32
    assert key.binding_key() != _station_key().binding_key()


@given(st.binary(max_size=binding.MAX_BYTES))
def test_hostile_bytes_parse_to_a_binding_or_are_refused(raw: bytes) -> None:
    try:
        parsed = binding.parse(raw)
    except binding.BindingMalformed:
        return
    # Whatever parses is exactly what the station would have written.
    assert parsed.render() in (raw, raw + b"\n")


@given(
    lines=st.lists(
        st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=40),
        max_size=8,
    )
)
def test_near_bindings_are_refused_unless_exact(lines: list[str]) -> None:
    raw = "\n".join(["dockagent-binding 1", *lines]).encode("ascii")
    try:
        parsed = binding.parse(raw)
    except binding.BindingMalformed:
        return
    assert parsed.render() in (raw, raw + b"\n")


@pytest.mark.parametrize("size", [1 << 20, 16 << 20])
def test_a_long_input_is_refused_in_bounded_time(size: int) -> None:
    raw = b"dockagent-binding 1\n" + b"station=" + b"A" * size
    started = time.monotonic()
    with pytest.raises(binding.BindingMalformed):
        binding.parse(raw)
    assert time.monotonic() - started < 1.0
