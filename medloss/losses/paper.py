"""Moved to :mod:`medloss.losses.explog_anatomynet` (named after its two losses)."""
from medloss._moved import forwarder

__getattr__ = forwarder("medloss.losses.paper", "medloss.losses.explog_anatomynet", ("AnatomyNetLoss", "ExpLogLoss"))
