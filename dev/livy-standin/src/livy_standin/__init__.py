"""A stand-in Apache Livy batch REST server with simulated Spark jobs, for dev and tests."""

from .registry import ApiError
from .server import LivyStandin

__version__ = "0.1.0"
__all__ = ["ApiError", "LivyStandin", "__version__"]
