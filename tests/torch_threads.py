"""Fixture ``single_thread``: run a test with one torch thread.

The test machine's 2 cores are shared by many jobs; on small tensors torch's intra-op threads then spin
against each other (40x slower measured here). Import the fixture into a test module with
``from tests.torch_threads import single_thread  # noqa: F401`` and mark it autouse there, or use it by name.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """One torch thread for the duration of the test, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
