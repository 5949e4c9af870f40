"""More conformance scenarios, one module per theme; run.py loads every module here after its own."""
