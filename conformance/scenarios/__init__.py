"""The conformance scenarios, one module per area; run.py imports every module here (its ORDER list fixes the running order)."""
