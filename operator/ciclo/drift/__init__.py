"""Baseline profiles and drift statistics (numpy/scipy); never imports the operator."""
