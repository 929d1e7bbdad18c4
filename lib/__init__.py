"""The toolkit's machinery, in packages by concern. Imports point down only (pyproject.toml's
import-linter contracts):

    search        strategies, neighbourhoods, the query loop over a table, trials and their engines
    predictors    features and encodings, the GIN encoder, pretraining, fitting, inference, metrics
    training      image folders and CIFAR-10, NB101's training protocol, run control, reports
    tfrecord      NB101's record format: framing, CRCs, protobuf, the parallel reader, the HDF5 writer
    nb101         the schema, cells, hashes, parameters, the network, the enumerated space
    util          errors, argument checks, atomic outputs, provenance, devices, worker processes

predictors, training and tfrecord sit side by side and never import each other. lib/ imports only
itself and third-party packages, never a script, dataset.py or model.py.
"""
