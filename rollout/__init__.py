"""Roll feature-flag phases out to Elixir release hosts over SSH, with automatic rollback."""
