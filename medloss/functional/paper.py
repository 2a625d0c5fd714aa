"""Moved to :mod:`medloss.functional.explog_anatomynet` (named after its two losses)."""
from medloss._moved import forwarder

__getattr__ = forwarder("medloss.functional.paper", "medloss.functional.explog_anatomynet",
                        ("anatomynet_loss", "class_frequency_weights", "explog_loss"))
