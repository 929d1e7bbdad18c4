"""NB101's TFRecord files, read without TensorFlow: the record format and its reference decoder
(records), masked CRC32C of many records at once (crc32c_numpy), the vectorised decoders (records_fast,
metrics_fast), byte ranges decoded in worker processes (chunks), and the converter's checks and HDF5
writer (convert).

Imports lib.nb101 and lib.util.
"""
