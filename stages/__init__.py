"""Stages: what runs after or instead of plain training (``python train.py stage=<name>``)."""
