"""What a predictor is made of, below model.py: the inputs of padded cells (features), BANANAS's path
encoding (path_encoding), the flow GIN encoder (flow_gin), 21 structural statistics of a cell
(cell_statistics), pgin's label-free pretraining (pretraining), a plain fitting loop (fitting), batched
inference (inference), and Kendall tau and the other rankings' metrics (metrics).

Imports lib.nb101 and lib.util.
"""
