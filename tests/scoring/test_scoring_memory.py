"""Memory stays flat in the number of cases: the peak RSS of scoring (and writing the CSV and JSON of) 1,000 tiny
cases is within a few MB of that of 250. Keeping the rows (3 row dicts a case) and building the files as strings,
as the scorer did before, grew it by 37 MB over 1,500 extra cases, i.e. about 18 MB over the 750 here."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _cohort_cases import write_cohort

import medloss

ROOT = str(Path(medloss.__file__).resolve().parents[1])
RUN = """
import resource, sys
from medloss.scoring import score_pairs, scoring_config
n, root = int(sys.argv[1]), sys.argv[2]
pairs = [(f"c{i:03d}", f"{root}/p/c{i:03d}.nii.gz", f"{root}/r/c{i:03d}.nii.gz") for i in range(n)]
result = score_pairs(pairs, scoring_config(), part_file=f"{root}/s{n}.part.jsonl")
result.write(csv=f"{root}/s{n}.csv", json=f"{root}/s{n}.json")
assert result.summary["n_cases"] == n and not result.errors
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_cases(tmp_path):
    write_cohort(tmp_path, 1000, size=8)
    env = {**os.environ, "PYTHONPATH": ROOT}
    runs = {n: subprocess.Popen([sys.executable, "-c", RUN, str(n), str(tmp_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env) for n in (250, 1000)}  # side by side
    peak = {}
    for n, proc in runs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        peak[n] = int(out.split()[-1]) / 1024  # MB (Linux reports KiB)
    assert (tmp_path / "s1000.csv").read_text(encoding="utf-8").count("\n") > 3000
    assert peak[1000] - peak[250] < 5.0, peak
