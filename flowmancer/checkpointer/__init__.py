from .checkpointer import CheckpointContents, Checkpointer, NoCheckpointAvailableError, checkpointer

__all__ = ["CheckpointContents", "Checkpointer", "NoCheckpointAvailableError", "checkpointer"]
