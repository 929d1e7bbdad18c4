"""The NAS-Bench-101 space: the HDF5 schema (schema), a cell with NB101's validation and pruning
(cell), NB101's md5 module hash (hashing), the stacked network and its parameters (network), the
423,624 cells enumerated in NB101's order (space), and other cells located in it (join).

Imports lib.util only.
"""
