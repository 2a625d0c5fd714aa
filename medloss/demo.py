"""Moved to :mod:`medloss.tour` (the guided tour behind ``medloss demo``)."""
from medloss._moved import forwarder

__getattr__ = forwarder("medloss.demo", "medloss.tour", ("DemoResult", "DEMO_DEFAULTS", "find_bundle", "run_demo"))
