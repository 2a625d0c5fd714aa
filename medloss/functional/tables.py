"""Moved to :mod:`medloss.backends.op` (the table operator belongs to the engines' side of the seam)."""
from medloss._moved import forwarder

__getattr__ = forwarder("medloss.functional.tables", "medloss.backends.op", ("TableOptions", "Tables", "tables"))
