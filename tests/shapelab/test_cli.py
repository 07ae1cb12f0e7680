"""The command-line entry points: --help without heavy imports, one-line errors for misspelt overrides."""
from __future__ import annotations

import subprocess
import sys

import pytest

from shapelab.cli.common import misspelt_override
from tests.conftest import REPO_ROOT

HEAVY = ("torch", "pytorch_lightning", "lightning", "trimesh", "matplotlib", "pycolmap")


@pytest.mark.parametrize(("script", "usage"), [
    ("train", "usage: python train.py"),
    ("evaluate", "usage: python evaluate.py"),
    ("preprocess", "usage: python preprocess.py"),
    ("compare", "usage: python compare.py"),
    ("sfm", "usage: python sfm.py"),
])
def test_help_starts_with_usage_and_imports_no_heavy_library(script, usage):
    code = (
        "import sys\n"
        f"sys.argv = ['{script}.py', '--help']\n"
        f"from shapelab.cli.{script} import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.startswith(usage), result.stdout[:300]
    assert "Common commands" in result.stdout or "common commands" in result.stdout
    assert "README.md" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_misspelt_override_gets_a_did_you_mean_line():
    message = misspelt_override("train", ["model.decoder.hiden_dim=3"])
    assert message == ("config key 'model.decoder.hiden_dim' does not exist (did you mean 'model.decoder.hidden_dim'?); "
                       "fix the spelling, or add a new key with +model.decoder.hiden_dim=...")
    assert "did you mean 'trainer.max_epochs'" in misspelt_override("train", ["experiment=occnet_svr", "trainer.max_epoch=3,4"])
    assert "did you mean 'seed'" in misspelt_override("train", ["seeed=1"])
    assert misspelt_override("train", ["model=occnet", "model.threshold=0.3", "+model.new_key=1"]) is None
    assert misspelt_override("evaluate", ["evaluate.splt=val"]).startswith("config key 'evaluate.splt' does not exist (did you mean 'evaluate.split'?)")


def test_misspelt_override_exits_2_with_one_line():
    result = subprocess.run([sys.executable, "train.py", "trainer.max_epochz=3"], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: config key 'trainer.max_epochz' does not exist (did you mean "
                                     "'trainer.max_epochs'?); fix the spelling, or add a new key with +trainer.max_epochz=...")
