"""Training: in-memory data, a resumable loop per codec family, export to model files."""
