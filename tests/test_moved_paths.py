"""Import paths and engine names that moved keep working for one release, with a DeprecationWarning naming the
new one."""
from __future__ import annotations

import importlib

import pytest
import torch

from medloss import backends, tour
from medloss.backends import op, options
from medloss.functional import explog_anatomynet
from medloss.losses import explog_anatomynet as explog_anatomynet_losses

MOVED = [
    ("medloss.functional.tables", "tables", op.tables),
    ("medloss.functional.tables", "TableOptions", options.TableOptions),
    ("medloss.functional.options", "TableOptions", options.TableOptions),
    ("medloss.functional.options", "VOXEL_TERMS", options.VOXEL_TERMS),
    ("medloss.functional.paper", "explog_loss", explog_anatomynet.explog_loss),
    ("medloss.losses.paper", "AnatomyNetLoss", explog_anatomynet_losses.AnatomyNetLoss),
    ("medloss.demo", "run_demo", tour.run_demo),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_an_old_path_warns_and_gives_the_moved_object(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"`{old}` moved to `medloss\."):
        assert getattr(module, name) is new


def test_an_old_path_refuses_a_name_it_never_had():
    with pytest.raises(AttributeError, match="no attribute 'region_stats'"):
        importlib.import_module("medloss.functional.tables").region_stats  # noqa: B018


def test_the_former_engine_name_native_selects_the_cpu_engine(monkeypatch):
    monkeypatch.setenv("MEDLOSS_BACKEND", "native")
    with pytest.warns(DeprecationWarning, match="MEDLOSS_BACKEND=native is now called 'cpu'"):
        assert backends.selected() == "cpu"
    x, y = torch.randn(1, 3, 8), torch.randint(0, 3, (1, 1, 8))
    expected = "cpu" if backends.cpu.enabled() else "eager"
    with pytest.warns(DeprecationWarning):
        assert backends.engine_for(x, y, options.TableOptions()) == expected
