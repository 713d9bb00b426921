"""The serving runtime that model pods run. It never imports the operator."""
