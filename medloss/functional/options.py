"""Moved to :mod:`medloss.backends.options` (the table operator's options belong to the engines' side)."""
from medloss._moved import forwarder

__getattr__ = forwarder("medloss.functional.options", "medloss.backends.options",
                        ("TableOptions", "VOXEL_TERMS", "ACTIVATIONS"))
