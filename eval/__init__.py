"""Evaluation: quality metrics, classic baseline codecs, BD-rate, RD results and plots.

`metrics.py` and `perceptual.py` measure; `baselines.py` and `codecs.py` are what can be
measured; `harness.py` runs `lic eval`; `results.py` is the CSV and JSON schema;
`bdrate.py` and `plots.py` turn curves into BD tables and figures. Committed results are
under `results/`, published reference curves under `reference/`.
"""
