"""Training side of fer: data readers, augmentation, the DDP/AMP training loop, evaluation, export."""
