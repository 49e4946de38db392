"""Reports: tables, figures and diagnostics written beside a run (modules are imported on demand)."""
