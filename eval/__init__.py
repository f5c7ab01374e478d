"""Evaluation: quality metrics, classic baseline codecs, BD-rate, RD results and plots."""
