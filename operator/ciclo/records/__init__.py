"""What a person or a MonitorPolicy asks of a Model, written as a record in status.

A rollback marks the serving version (`status.rolledBack` on the ModelVersion); a
retirement is recorded on the Model (`status.retirement`). Each is written under its own
field manager, never into the spec, and the Model controller acts on it. The CLI and the
monitoring loop both write them, so they live below both.
"""
