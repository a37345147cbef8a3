"""`make bench` (`python -m bench`): how fast and how big, measured side by side in one run.

1. Map stage speed on a fixed sample of test photos, decoded once up front (decoding is not timed), with the
   site's model, runtime and batch size; the contenders take turns batch by batch and each reports its median
   images/s over the repeats (`contenders.py`, `timing.py`). The maps are first checked to agree with torchcam's
   and pytorch-grad-cam's in float32 (`agreement.py`).
2. The leaderboard's cost per photo: seconds and forward passes (`leaderboard_cost.py`).
3. Whole builds of `python -m generator site` in subprocesses: cold, nothing changed, a template changed, the CSS
   changed, the code changed; time, peak memory of the process tree, size of the site (`builds.py`).
4. The same builds of the code before the rework (`--compare-ref`), and at scale (`--synthetic N`).

The numbers are printed as a table and appended as one row to bench/results.csv (`results.py`). `cli.py` holds
the flags and the order of the parts; `inputs.py` the photo sample and the model as the site sets them up.
"""
