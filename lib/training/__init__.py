"""Training one cell on images, below trainer.py: CIFAR-10 and any image-folder tree, the validation
split and what the data is (images), a tree's listing, decoding and uint8 cache (image_folders), the data
order and augmentation on the device (augment), NB101's TF-compatible protocol (protocol), ckpt.pt and
--resume (checkpoint), the DDP start (run_control), trainer.py's command line and the checks of it that
need no training (command_line), and the run's record and curves (run_report).

Imports lib.nb101 and lib.util.
"""
