"""Metric sources and rule evaluation for MonitorPolicies; no Kubernetes API here."""
