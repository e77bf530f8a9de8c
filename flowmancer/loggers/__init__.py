from .logger import Logger, logger

__all__ = ["Logger", "logger"]
