"""Training terms reach the loggers on the same steps, with the same values, as logging every step would give."""
from __future__ import annotations

import csv

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from shapelab.models.base import ShapeModel
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinyModel(ShapeModel):
    every_step = False

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def training_step(self, batch, batch_idx):
        loss = (self.weight * batch[0]).square().mean()
        terms = {"loss": loss, "half": loss / 2}
        if self.every_step:
            for name, value in terms.items():
                self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=len(batch[0]))
        else:
            self.log_training_terms(terms, batch_size=len(batch[0]))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _written(tmp_path, every_step: bool) -> list[dict]:
    torch.manual_seed(0)
    model = TinyModel()
    model.every_step = every_step
    logger = CSVLogger(tmp_path, name="every" if every_step else "helper")
    trainer = pl.Trainer(max_epochs=3, log_every_n_steps=3, logger=logger, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    data = DataLoader(TensorDataset(torch.linspace(-1, 1, 7)[:, None]), batch_size=1)
    trainer.fit(model, data)
    with open(f"{logger.log_dir}/metrics.csv") as f:
        return list(csv.DictReader(f))


def test_the_loggers_get_what_logging_every_step_gives(tmp_path):
    helper, every = _written(tmp_path, False), _written(tmp_path, True)
    assert [row["step"] for row in helper] == ["2", "5", "8", "11", "14", "17", "20"]  # every 3rd of 21 steps
    assert helper == every


def test_without_a_trainer_every_step_logs():
    model, logged = TinyModel(), {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, kwargs["prog_bar"])
    model.training_step((torch.ones(2, 1),), 0)
    assert logged == {"train/loss": True, "train/half": False}
