from .extension import Extension, extension

__all__ = ["Extension", "extension"]
