"""Regenerate ``monai_cases.json``: the published test cases (inputs, options, expected values) of MONAI's loss
tests, as data, for ``tests/losses/test_monai_published.py``.

Usage: ``python tests/losses/data/make_monai_cases.py /path/to/MONAI`` (a MONAI source checkout; the cases
were taken from commit d388d1c6, June 2025). Only the module-level ``TEST_CASES*`` lists are read: each test file is
executed up to its first ``class`` statement, with MONAI's test helpers stubbed out.
"""
from __future__ import annotations

import json
import pathlib
import sys
import types

import numpy as np
import torch

FILES = {  # test file -> (loss class, layout of one case)
    "test_dice_loss.py": ("DiceLoss", "plain"),
    "test_dice_ce_loss.py": ("DiceCELoss", "plain"),
    "test_focal_loss.py": ("FocalLoss", "plain"),
    "test_generalized_dice_loss.py": ("GeneralizedDiceLoss", "plain"),
    "test_tversky_loss.py": ("TverskyLoss", "plain"),
    "test_ds_loss.py": (None, "ds"),
}
DS_INNER = {"TEST_CASES_DICECE": "DiceCELoss", "TEST_CASES_DICECE2": "DiceCELoss", "TEST_CASES_DICE": "DiceLoss",
            "TEST_CASES_DICEFOCAL": "DiceFocalLoss"}


def encode(value):
    """Tensors -> {"tensor": nested list, "dtype": name}; known activations -> their name."""
    if isinstance(value, torch.Tensor):
        return {"tensor": value.tolist(), "dtype": str(value.dtype).replace("torch.", "")}
    if isinstance(value, np.ndarray):
        return {"tensor": value.tolist(), "dtype": "float64"}
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if value is torch.tanh:
        return {"activation": "tanh"}
    if callable(value):  # the only lambda in the cases is log_softmax over channels
        probe = torch.tensor([[1.0, 2.0]])
        assert torch.allclose(value(probe), torch.log_softmax(probe, dim=1))
        return {"activation": "log_softmax"}
    return value


def module_cases(path: pathlib.Path) -> dict:
    source = path.read_text()
    source = source[: source.index("\nclass ")]
    sys.modules.setdefault("tests", types.ModuleType("tests"))
    stub = types.ModuleType("tests.test_utils")
    stub.test_script_save = stub.SkipIfBeforePyTorchVersion = lambda *a, **k: None
    sys.modules["tests.test_utils"] = stub
    parameterized = types.ModuleType("parameterized")
    parameterized.parameterized = None
    sys.modules.setdefault("parameterized", parameterized)
    namespace: dict = {"__name__": "monai_cases"}
    exec(compile(source, str(path), "exec"), namespace)
    return {k: v for k, v in namespace.items() if k.startswith("TEST_CASES") and isinstance(v, list)}


def main(root: str) -> None:
    cases = []
    for name, (loss, layout) in FILES.items():
        for list_name, items in module_cases(pathlib.Path(root) / "tests" / "losses" / name).items():
            for i, case in enumerate(items):
                entry = {"file": name, "case": f"{list_name}[{i}]"}
                if layout == "plain":
                    options, data, expected = case
                    entry.update(loss=loss, options=encode(options))
                else:
                    inner = DS_INNER[list_name]
                    options, ds_options, data, expected = case if len(case) == 4 else (case[0], {}, *case[1:])
                    entry.update(loss="DeepSupervisionLoss", inner=inner, options=encode(options),
                                 ds_options=encode(ds_options))
                if isinstance(data["input"], torch.Tensor) and data["input"].device.type != "cpu":
                    continue
                entry.update(input=encode(data["input"]), target=encode(data["target"]), expected=encode(expected))
                cases.append(entry)
    out = pathlib.Path(__file__).with_name("monai_cases.json")
    lines = (json.dumps(case, separators=(",", ":")) for case in cases)  # one case per line
    out.write_text("[\n" + ",\n".join(lines) + "\n]\n")
    print(f"{len(cases)} cases -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
