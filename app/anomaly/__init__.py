"""The anomaly view: a CSV stream with its anomaly score beneath, as HTM Studio showed it."""
from .view import AnomalyView

__all__ = ["AnomalyView"]
