"""llamadesk.convert: PyTorch checkpoints to GGUF, without torch."""
