"""Roll feature-flag phases out to Elixir release hosts over SSH, with automatic rollback."""

__version__ = "0.1.0"
