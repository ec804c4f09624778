"""The multi-discriminator example trainer: it runs, writes its files, and its two loss paths agree."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_example():
    spec = importlib.util.spec_from_file_location("example_multi_discriminator",
                                                  ROOT / "examples" / "multi_discriminator.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def md():
    return _load_example()


def test_discriminator_set_shapes(md):
    torch.manual_seed(0)
    disc = md.Discriminators()
    logits, fmaps = disc(torch.randn(2, 1, md.SEGMENT))
    assert len(disc.discs) == 5 and len(logits) == len(fmaps) == 5
    assert [len(f) for f in fmaps] == [5, 5, 5, 5, 5]
    # The period discriminators see (T/p, p) images; the second scale sees the pooled waveform.
    assert [f[0].shape[-1] for f in fmaps[:3]] == [2, 3, 5]
    assert fmaps[4][0].shape[-1] == md.SEGMENT // 2 + 1 and fmaps[3][0].shape[-1] == md.SEGMENT
    assert all(l.shape[0] == 2 and l.dim() == 2 for l in logits)


def test_waveforms_are_sums_of_tones(md):
    x = md.waveforms(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 1, md.SEGMENT) and x.abs().max() < 1
    spec = torch.fft.rfft(x[:, 0] * torch.hann_window(md.SEGMENT)).abs()
    # Energy sits in the 8-120 cycles band the tones are drawn from, not above it.
    assert spec[:, 130:].sum() < 0.05 * spec[:, 5:125].sum()


def test_example_runs_and_its_loss_paths_agree(md, tmp_path, capsys):
    report = md.main(["--steps", "3", "--timing-steps", "2", "--batch", "2", "--device", "cpu",
                      "--out", str(tmp_path)])
    png = tmp_path / "multi_disc.png"
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["steps"] == 3
    assert all(math.isfinite(v) for v in saved["final"].values())
    first = report["timing"]["first_step_losses"]
    # Same models, same seed, same batch: the loops and the fused calls give the same losses.
    for k in ("d", "g_adv", "fm"):
        assert first["loops"][k] > 0 and math.isfinite(first["loops"][k])
        assert first["gan_kernels"][k] == pytest.approx(first["loops"][k], rel=1e-5), k
    ms = report["timing"]["mean_step_ms"]
    assert ms["loops"] > 0 and ms["gan_kernels"] > 0
    assert "mean step time" in capsys.readouterr().out
