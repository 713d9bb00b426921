"""kopf handlers, one module per kind: parse, plan, apply."""
