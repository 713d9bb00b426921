"""`make demo`: the whole model lifecycle on the local cluster (see story.py)."""
