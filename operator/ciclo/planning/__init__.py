"""Pure functions: desired manifests and decisions. No I/O here."""
