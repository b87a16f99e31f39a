"""De-identified research extracts: pure rules (rules.py), the export (export.py) and its
key (keys.py)."""
