"""The `ciclo` command."""
