"""tools/bench_training.py times each training variant and relates it to the float32 one-thread step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reports_every_variant_against_float32_on_the_first_thread_count():
    command = [sys.executable, str(ROOT / "tools" / "bench_training.py"), "--threads", "1", "2", "--vae-batch", "1",
               "--batch", "1", "--encode-count", "2", "--repeats", "1"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    variants = {"vae step fp32", "vae step bf16", "unet step fp32", "unet step bf16", "encode latents",
                "encode contexts"}
    assert set(report["seconds"]) == {"1", "2"}
    assert all(set(row) == variants and min(row.values()) > 0 for row in report["seconds"].values())
    assert all(value == 1.0 for name, value in report["against_first"]["1"].items() if "bf16" not in name)
    ratio = report["against_first"]["2"]["vae step bf16"]
    seconds = report["seconds"]
    expected = seconds["2"]["vae step bf16"] / seconds["1"]["vae step fp32"]
    assert abs(ratio - expected) <= 0.005 + 0.05 * expected
