"""Loading Demucs models: by name, from a local repo, deterministically."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from demucs.htdemucs import HTDemucs

from harness.models import HTDEMUCS_KWARGS, save_bag, save_random_htdemucs
from pipelines.errors import ModelUnavailable, UnknownModel
from pipelines.separation import SOURCES, Separator, load_model, run_batch

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY: dict[str, Any] = {
    "channels": 8,
    "depth": 2,
    "nfft": 256,
    "t_layers": 1,
    "t_heads": 2,
    "bottom_channels": 0,
    "samplerate": 8000,
    "segment": 1,
}
DIGEST = (
    "from pipelines.separation import load_model; "
    "print(load_model('demucs_unittest').weights_digest())"
)


@pytest.fixture
def keep_rng() -> Iterator[None]:
    state = torch.random.get_rng_state()
    yield
    assert torch.equal(state, torch.random.get_rng_state()), "the global torch RNG moved"


def test_unittest_model_is_deterministic_and_leaves_the_global_rng(keep_rng: None) -> None:
    first, second = load_model("demucs_unittest"), load_model("demucs_unittest")
    assert first.weights_digest() == second.weights_digest()
    assert first.info() == {
        "name": "demucs_unittest",
        "sources": SOURCES,
        "samplerate": 44100,
        "audio_channels": 2,
        "n_models": 1,
    }
    assert not first.models[0].training


def test_unittest_model_is_identical_in_fresh_processes() -> None:
    """Every replica loading ``demucs_unittest`` must serve the same weights."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DIGEST],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    digests = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        digests.append(out.strip())
    assert digests[0] == digests[1] == load_model("demucs_unittest").weights_digest()


def test_random_htdemucs_round_trips_through_a_local_repo(tmp_path: Path) -> None:
    save_random_htdemucs(tmp_path, "tiny-v1", seed=4, **TINY)
    path = save_random_htdemucs(tmp_path, "tiny-v1", seed=5, **TINY)  # replaces, no duplicate
    assert [p.name for p in tmp_path.glob("*.th")] == [path.name]
    loaded = load_model("tiny-v1", tmp_path)
    model = loaded.models[0]
    assert isinstance(model, HTDemucs) and not model.training
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        built = HTDemucs(**{**HTDEMUCS_KWARGS, **TINY})
    assert loaded.weights_digest() == Separator.from_model("built", built).weights_digest()
    assert loaded.info() == {
        "name": "tiny-v1",
        "sources": SOURCES,
        "samplerate": 8000,
        "audio_channels": 2,
        "n_models": 1,
    }


def test_a_bag_file_loads_as_sub_models_with_weights(tmp_path: Path) -> None:
    save_random_htdemucs(tmp_path, "a", seed=1, **TINY)
    save_random_htdemucs(tmp_path, "b", seed=2, **TINY)
    weights = [[1.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.5, 1.0]]
    save_bag(tmp_path, "pair", ["a", "b"], weights=weights)
    bag = load_model("pair", tmp_path)
    assert bag.weights == weights
    assert bag.info()["n_models"] == 2
    assert bag.weights_digest() != load_model("a", tmp_path).weights_digest()


def test_weights_that_silence_a_source_are_refused() -> None:
    model = load_model("demucs_unittest").models[0]
    with pytest.raises(ValueError, match="'bass'"):
        Separator("x", SOURCES, 44100, 2, [model], [[1.0, 0.0, 1.0, 1.0]])


def test_unknown_names_and_repos_raise_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="not a Demucs pretrained") as info:
        load_model("no_such_model")
    assert info.value.code == "unknown_model"
    with pytest.raises(UnknownModel, match="does not exist"):
        load_model("htdemucs", tmp_path / "missing")
    with pytest.raises(ModelUnavailable, match="could not be loaded") as missing:
        load_model("htdemucs", tmp_path)
    assert missing.value.code == "model_unavailable"
    assert missing.value.details["model"] == "htdemucs" and missing.value.details["reason"]


def test_run_batch_accepts_read_only_input_without_warnings() -> None:
    model = load_model("demucs_unittest").models[0]
    batch = np.zeros((2, 2, 4410), dtype=np.float32)
    batch.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = run_batch(model, batch)
    assert out.shape == (2, 4, 2, 4410) and out.dtype == np.float32
