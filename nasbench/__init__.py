"""NAS-Bench-101's API without TensorFlow: `from nasbench import api`, as google-research/nasbench names it,
answering from this toolkit's HDF5 (or an NB101 TFRecord, converted once). nasbench/api.py says how.

Imports lib/ only (pyproject.toml's import-linter contracts), never torch or TensorFlow.
"""
