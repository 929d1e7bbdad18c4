"""Training one cell on images, below trainer.py: CIFAR-10 and any image-folder tree, the validation
split, the uint8 cache and device-resident augmentation (images), NB101's TF-compatible protocol
(protocol), the DDP start, signals and clean stops (run_control), and the run's record and curves
(report).

Imports lib.nb101 and lib.util.
"""
