"""Ledger targets: which store a --ledger value names, and passwords kept out of records."""

from __future__ import annotations

from rollout.database import is_postgres, redact_argv
from rollout.postgres import redact


def test_a_postgresql_uri_names_the_server_and_anything_else_a_file() -> None:
    """Only libpq's URI schemes select PostgreSQL; paths (even odd ones) stay SQLite files."""
    assert is_postgres("postgresql://u@db/rollout") and is_postgres("postgres://db/r")
    assert not is_postgres(".rollout/ledger.db") and not is_postgres("postgresql.db")


def test_redact_shows_user_host_port_and_database_only() -> None:
    """The location printed in messages never holds the password, from the URI or a param."""
    assert redact("postgresql://bob:s3cret@db.internal:6432/rollout?sslmode=require") == (
        "postgresql://bob@db.internal:6432/rollout"
    )
    assert "pw9" not in redact("postgresql://bob@db/rollout?password=pw9")
    assert redact("postgresql://bob@/rollout?host=/run/pg&port=5433") == (
        "postgresql://bob@/rollout?host=/run/pg&port=5433"
    )


def test_command_lines_are_recorded_without_passwords() -> None:
    """A URI with a password given as --ledger is recorded (runs, lock errors) masked."""
    argv = [
        "deploy", "--ledger", "postgresql://bob:s3cr%40t@db:5432/r?sslmode=require",
        "--ledger=postgres://u@h/d?password=abc&sslmode=verify-full", "--phase", "2",
    ]  # fmt: skip
    assert redact_argv(argv) == (
        "deploy", "--ledger", "postgresql://bob:***@db:5432/r?sslmode=require",
        "--ledger=postgres://u@h/d?password=***&sslmode=verify-full", "--phase", "2",
    )  # fmt: skip
