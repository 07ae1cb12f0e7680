"""Runs at scale: exact resume, DDP on CPU, sweeps through submitit_local and Optuna (issue #8)."""
from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, compose_run_cfg, tiny_synthetic_overrides

FAST_DEEPSDF = [
    "logger=csv", "data.batch_size=1", "data.samples_per_scene=512", "data.eval_samples=1024",
    "model.val_fit.num_iterations=2", "model.mesh_every_n_epochs=1000", "evaluate_after_training=false",
]


def _losses(run_dir: Path) -> dict[int, float]:
    with (run_dir / "csv" / "metrics.csv").open() as f:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")}


@pytest.mark.slow  # a training run: > 20 s on 2 loaded cores
def test_resumed_run_continues_with_the_same_steps_and_losses(tiny_synthetic, compose_cfg, tmp_path):
    """Exact resume needs the restored RNG states: dropout draws its masks from torch's global generator, so
    without shapelab.callbacks.RNGStateCheckpoint the resumed losses differ."""
    from shapelab.cli.train import train

    common = [*tiny_synthetic_overrides(tiny_synthetic), *FAST_DEEPSDF, "model.decoder.dropout=0.5", "trainer=cpu",
              "trainer.log_every_n_steps=1",
              "trainer.enable_progress_bar=false", "trainer.check_val_every_n_epoch=100", "callbacks.model_checkpoint.monitor=null"]
    train(compose_run_cfg(compose_cfg, [*common, "trainer.max_epochs=4"], tmp_path / "full"))
    train(compose_run_cfg(compose_cfg, [*common, "trainer.max_epochs=2"], tmp_path / "first_half"))
    train(compose_run_cfg(compose_cfg, [*common, "trainer.max_epochs=4", f"ckpt_path={tmp_path / 'first_half'}"],
                          tmp_path / "resumed"))

    full, resumed = _losses(tmp_path / "full"), _losses(tmp_path / "resumed")
    assert len(full) == 4 * 2  # 2 training shapes, batch 1, every step logged
    assert sorted(resumed) == sorted(full)[4:]  # the step counter continues where the first half stopped
    for step in resumed:
        assert resumed[step] == pytest.approx(full[step], rel=1e-5, abs=1e-7)


def _run(args: list[str], env_extra: dict | None = None, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.slow  # > 60 s on 2 loaded cores (--durations)
def test_ddp_on_cpu_with_two_processes(tiny_synthetic, tmp_path):
    result = _run(["train.py", "trainer=ddp", "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "trainer.check_val_every_n_epoch=1",
                   "trainer.enable_progress_bar=false", *tiny_synthetic_overrides(tiny_synthetic), *FAST_DEEPSDF,
                   f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    assert "All distributed processes registered. Starting with 2 processes" in result.stderr + result.stdout
    # 2 train shapes split over 2 ranks: one step per epoch, and the val metric was synced and logged
    steps = _losses(tmp_path)
    assert max(steps) == 1
    with (tmp_path / "csv" / "metrics.csv").open() as f:
        assert any(r.get("val/sdf_l1") for r in csv.DictReader(f))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow  # > 60 s on 2 loaded cores (--durations)
def test_submitit_local_sweep_records_a_failed_run_and_compares(tiny_synthetic, tmp_path):
    sweep = tmp_path / "sweep"
    result = _run(["train.py", "-m", "hydra/launcher=local_processes", "trainer=smoke",
                   *tiny_synthetic_overrides(tiny_synthetic), *FAST_DEEPSDF,
                   "model.decoder.hidden_dim=96,-1", f"hydra.sweep.dir={sweep}"])
    assert result.returncode == 0, result.stderr[-3000:]
    good, bad = sweep / "0", sweep / "1"
    assert (good / "checkpoints" / "last.ckpt").is_file() and not (good / "FAILED").exists()
    assert (bad / "FAILED").is_file()  # recorded; the sweep went on
    assert list(sweep.glob(".submitit/*/*_log.out"))  # really launched through submitit

    report = _run(["compare.py", str(sweep), "--out", str(tmp_path / "report")])
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "model.decoder.hidden_dim" in text and "FAILED" in text


@pytest.mark.slow  # > 60 s on 2 loaded cores (--durations)
def test_optuna_sweep_study_is_stored_and_resumes(tiny_synthetic, tmp_path):
    args = ["train.py", "hparams_search=deepsdf_optuna", "trainer=smoke", "hydra.sweeper.n_trials=1",
            *tiny_synthetic_overrides(tiny_synthetic), *FAST_DEEPSDF, f"paths.log_dir={tmp_path}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    for _ in range(2):  # the second invocation continues the same study
        result = _run(args)
        assert result.returncode == 0, result.stderr[-3000:]
    with sqlite3.connect(tmp_path / "optuna.sqlite") as db:
        states = [s for (s,) in db.execute("SELECT state FROM trials")]
    assert states == ["COMPLETE", "COMPLETE"]
