"""Bounded history and export."""

import csv
import io
import json
import subprocess
import sys

import numpy as np

from vizvi.engine import Run, RunConfig
from vizvi.history import DecimatingBuffer, to_csv, to_json


def test_buffer_stays_bounded_and_spans_the_whole_run():
    buf = DecimatingBuffer(recent=500, archive=1000)
    total = 1_000_000
    for start in range(0, total, 1024):
        steps = np.arange(start, min(start + 1024, total)) + 1
        buf.append({"step": steps, "x": np.stack([steps, -steps], 1).astype(float)})
        assert len(buf) <= 1500
    cols = buf.columns()
    steps = cols["step"]
    assert steps[0] == 1 and steps[-1] == total  # oldest and newest kept
    assert np.all(np.diff(steps) > 0)
    np.testing.assert_array_equal(steps[-500:], np.arange(total - 499, total + 1))  # recent at full resolution
    archive = steps[:-500]
    gaps = np.diff(archive)
    assert len(set(gaps.tolist())) == 1  # old history evenly thinned
    assert len(archive) > 500  # and still dense enough to plot
    np.testing.assert_array_equal(cols["x"][:, 1], -steps)  # rows stay aligned across columns


def test_million_step_run_stays_bounded_in_memory(tmp_path):
    # In a fresh process, peak memory read from /proc/self/status (VmHWM): getrusage's
    # ru_maxrss survives exec on Linux and would report the (large) pytest parent instead.
    script = (
        "import json, re\n"
        "from vizvi.engine import Run, RunConfig\n"
        "r = Run(RunConfig(model='normal-mean', steps=1_000_000, variance_every=1000, replicates=8)).run()\n"
        "s = r.history.series()\n"
        "print(json.dumps({'status': r.status, 'steps': r.step, 'points': len(s['step']),"
        " 'variance_points': len(r.history.variance_series()['step']), 'first': int(s['step'][0]), 'last': int(s['step'][-1]),"
        " 'maxrss_kib': int(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "finished" and out["steps"] == 1_000_000
    assert out["points"] <= 8000 and out["first"] == 1 and out["last"] == 1_000_000
    assert out["variance_points"] <= 2000
    assert out["maxrss_kib"] < 1024 * 1024, out  # under 1 GiB


def test_json_and_csv_export():
    run = Run(RunConfig(model="poisson-gamma", steps=120, variance_every=10)).run()
    record = run.record()
    text = to_json(record)
    assert "NaN" not in text
    back = json.loads(text)
    assert back["history"]["step"][:3] == [1, 2, 3]
    rows = list(csv.DictReader(io.StringIO(to_csv(record))))
    assert len(rows) == 120
    assert float(rows[0]["params.concentration"]) == back["history"]["params"]["concentration"][0]
    assert rows[0]["grad_snr.rate"] != "" and rows[1]["grad_snr.rate"] == ""  # variance only where measured
    assert float(rows[10]["grad_variance.concentration"]) == back["history"]["grad_variance"]["concentration"][1]


def test_nan_becomes_null():
    run = Run(RunConfig(model="logistic-regression", steps=5)).run()
    record = run.record()
    assert record["history"]["kl"] == [None] * 5  # no exact posterior: KL unknown, not NaN
    json.loads(to_json(record))
