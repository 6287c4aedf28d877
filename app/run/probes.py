"""The live plots' probes live in deephtm (the training process finds them too)."""
from deephtm.live_probes import MAX_RASTER_UNITS, Key, Probes, is_image_shape  # noqa: F401
