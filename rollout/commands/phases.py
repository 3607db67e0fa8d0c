"""The phase arguments of the CLI: parsed, required, or refused with the next phase named."""

from __future__ import annotations

from ..errors import UsageError


def bad_phase(number: int, last: int, recorded: int | None = None) -> None:
    """Refuse a phase outside 1..``last``, naming the next phase after ``recorded``."""
    after = recorded if recorded is not None else 0
    if after < last:
        hint = f"the next phase is {after + 1}: `invoke approve {after + 1}`"
    else:
        hint = f"the ledger records phase {recorded}: no phase is left to approve"
    raise UsageError(
        f"phase {number} does not exist: the playbook has phases 1..{last}",
        hint=f"{hint}; `invoke status` shows the recorded phase",
    )


def require_phase(value: str | int | None) -> int:
    number = check_phase_arg(value)
    if number is None:
        raise UsageError("--phase is required")
    return number


def check_phase_arg(value: str | int | None, name: str = "--phase") -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} expects a phase number, got {value!r}") from None
