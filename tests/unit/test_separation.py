"""The chunk plan and overlap-add reproduce ``demucs.apply.apply_model`` exactly."""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
from demucs.apply import BagOfModels, apply_model
from demucs.demucs import Demucs
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs
from demucs.pretrained import get_model

from harness.models import save_bag, save_random_htdemucs
from pipelines.separation import (
    SOURCES,
    SeparationPlan,
    Separator,
    draw_shift_offsets,
    load_model,
    normalise,
    run_batch,
)
from pipelines.separation.runner import separate

pytestmark = pytest.mark.unit

Array = npt.NDArray[np.float32]
SR = 8000
# Small but complete HTDemucs: both branches, the transformer, 1 s windows at 8 kHz.
TINY: dict[str, Any] = {
    "channels": 8,
    "depth": 2,
    "nfft": 256,
    "t_layers": 1,
    "t_heads": 2,
    "bottom_channels": 0,
    "dconv_mode": 3,
    "samplerate": SR,
    "segment": 1,
}
BAG_WEIGHTS = [[1.0, 0.5, 0.0, 2.0], [0.25, 1.0, 1.0, 3.0]]
ATOL = 1e-5


def tiny_htdemucs(seed: int, audio_channels: int = 2) -> HTDemucs:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: HTDemucs = HTDemucs(sources=SOURCES, audio_channels=audio_channels, **TINY)
    model.eval()
    return model


def track(length: int, channels: int = 2, seed: int = 0) -> Array:
    return np.random.default_rng(seed).standard_normal((channels, length)).astype(np.float32)


def reference(model: Any, mix: Array, *, overlap: float, shifts: int = 0, seed: int = 0) -> Array:
    """What demucs computes, leaving the global ``random`` state as it was."""
    state = random.getstate()
    random.seed(seed)
    try:
        with torch.no_grad():
            out = apply_model(
                model, torch.from_numpy(mix)[None], shifts=shifts, split=True, overlap=overlap
            )
    finally:
        random.setstate(state)
    result: Array = out[0].numpy()
    return result


def planned(
    sep: Separator,
    mix: Array,
    *,
    overlap: float,
    shifts: int = 0,
    seed: int = 0,
    batch: int = 1,
    shuffle: int | None = None,
) -> Array:
    """The coordinator/worker path, with windows optionally in a shuffled order."""
    length = mix.shape[-1]
    offsets = draw_shift_offsets(sep, shifts, seed, length=length, overlap=overlap)
    plan = SeparationPlan.build(sep, length, overlap=overlap, shift_offsets=offsets)
    batches = plan.batches(batch)
    if shuffle is not None:
        random.Random(shuffle).shuffle(batches)
    acc = plan.accumulator()
    for windows in batches:
        outputs = run_batch(sep.models[windows[0].sub_model], plan.extract_batch(mix, windows))
        pairs = list(zip(windows, outputs, strict=True))
        if shuffle is not None:
            random.Random(shuffle).shuffle(pairs)
        for window, output in pairs:
            acc.add(window, output)
    return acc.result()


def assert_close(actual: Array, expected: Array) -> None:
    assert actual.shape == expected.shape
    assert np.abs(expected).max() > 1e-3  # a silent reference would prove nothing
    np.testing.assert_allclose(actual, expected, rtol=0, atol=ATOL)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and idle OpenMP threads spin on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def single() -> Separator:
    return Separator.from_model("tiny", tiny_htdemucs(1))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    save_random_htdemucs(root, "tiny_a", seed=1, **TINY)
    save_random_htdemucs(root, "tiny_b", seed=2, **TINY)
    save_bag(root, "tiny_bag", ["tiny_a", "tiny_b"], weights=BAG_WEIGHTS)
    return root


@pytest.fixture(scope="module")
def bag(repo: Path) -> Separator:
    return load_model("tiny_bag", repo)


@pytest.fixture(scope="module")
def demucs_bag(repo: Path) -> BagOfModels:
    """The same bag loaded independently by demucs itself: the reference."""
    model = get_model("tiny_bag", repo)
    assert isinstance(model, BagOfModels)
    return model


# --- equality with apply_model ------------------------------------------------------


@pytest.mark.parametrize("overlap", [0.1, 0.25, 0.5])
def test_single_model_matches_apply_model(single: Separator, overlap: float) -> None:
    mix = track(3 * SR + 411)
    assert_close(
        planned(single, mix, overlap=overlap), reference(single.models[0], mix, overlap=overlap)
    )


@pytest.mark.parametrize("overlap", [0.1, 0.25, 0.5])
def test_weighted_bag_matches_apply_model(
    bag: Separator, demucs_bag: BagOfModels, overlap: float
) -> None:
    mix = track(2 * SR + 977, seed=1)
    assert_close(planned(bag, mix, overlap=overlap), reference(demucs_bag, mix, overlap=overlap))


def test_shifts_match_apply_model_with_the_same_seed(single: Separator) -> None:
    mix = track(2 * SR + 5, seed=2)
    expected = reference(single.models[0], mix, overlap=0.25, shifts=2, seed=11)
    assert_close(planned(single, mix, overlap=0.25, shifts=2, seed=11), expected)


def test_bag_with_shifts_matches_apply_model(bag: Separator, demucs_bag: BagOfModels) -> None:
    mix = track(SR + 3001, seed=3)
    expected = reference(demucs_bag, mix, overlap=0.25, shifts=2, seed=5)
    assert_close(planned(bag, mix, overlap=0.25, shifts=2, seed=5), expected)


def test_mono_model_matches_apply_model() -> None:
    mono = Separator.from_model("mono", tiny_htdemucs(3, audio_channels=1))
    mix = track(2 * SR + 123, channels=1, seed=4)
    assert mono.audio_channels == 1
    assert_close(planned(mono, mix, overlap=0.25), reference(mono.models[0], mix, overlap=0.25))


@pytest.mark.parametrize(
    ("length", "shifts"),
    [(3001, 0), (3001, 1), (SR - 1, 0), (SR, 0), (SR + 1, 0), (6001, 0)],
    ids=["short", "short-shifted", "segment-1", "segment", "segment+1", "one-sample-last-window"],
)
def test_edge_lengths_match_apply_model(single: Separator, length: int, shifts: int) -> None:
    mix = track(length, seed=length)
    expected = reference(single.models[0], mix, overlap=0.25, shifts=shifts, seed=3)
    assert_close(planned(single, mix, overlap=0.25, shifts=shifts, seed=3), expected)


def test_window_order_and_batching_do_not_change_the_result(
    bag: Separator, demucs_bag: BagOfModels
) -> None:
    mix = track(2 * SR + 77, seed=6)
    in_order = planned(bag, mix, overlap=0.25, shifts=2, seed=9)
    shuffled = planned(bag, mix, overlap=0.25, shifts=2, seed=9, batch=3, shuffle=1)
    np.testing.assert_allclose(shuffled, in_order, rtol=0, atol=1e-6)
    assert_close(shuffled, reference(demucs_bag, mix, overlap=0.25, shifts=2, seed=9))


@pytest.mark.parametrize(("segment", "shifts"), [(None, 0), (0.5, 0), (0.5, 1)])
def test_hdemucs_unittest_model_matches_apply_model(segment: float | None, shifts: int) -> None:
    sep = load_model("demucs_unittest")
    model = sep.models[0]
    assert isinstance(model, HDemucs)
    if segment is not None:
        model.segment = segment  # several windows of two shapes instead of one 40 s window
    mix = track(SR * 3 + 999, seed=7)  # about 0.57 s at 44.1 kHz
    plan = SeparationPlan.build(sep, mix.shape[-1], overlap=0.25)
    assert [w.padded_length for w in plan.windows] == [w.length for w in plan.windows]
    expected = reference(model, mix, overlap=0.25, shifts=shifts, seed=2)
    assert_close(planned(sep, mix, overlap=0.25, shifts=shifts, seed=2, batch=2), expected)


@pytest.mark.parametrize("shifts", [0, 1])
def test_time_domain_demucs_padded_to_its_valid_length_matches_apply_model(shifts: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Demucs(SOURCES, channels=8, depth=3, dconv_comp=4, samplerate=SR, segment=1)
    model.eval()
    sep = Separator.from_model("demucs", model)
    mix = track(2 * SR + 3001, seed=12)
    plan = SeparationPlan.build(sep, mix.shape[-1], overlap=0.25)
    assert any(w.padded_length > w.length for w in plan.windows)
    expected = reference(model, mix, overlap=0.25, shifts=shifts, seed=4)
    assert_close(planned(sep, mix, overlap=0.25, shifts=shifts, seed=4, batch=2), expected)


@pytest.mark.parametrize("shifts", [0, 2])
def test_separate_matches_demucs_normalised_separation(single: Separator, shifts: int) -> None:
    wav = 0.3 * track(2 * SR + 1, seed=8) + 0.05
    ref = torch.from_numpy(wav).mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    normalised = ((torch.from_numpy(wav) - mean) / std).numpy()
    expected = reference(single.models[0], normalised, overlap=0.25, shifts=shifts, seed=1)
    expected = expected * std.item() + mean.item()
    stems = separate(single, wav, overlap=0.25, shifts=shifts, seed=1, batch_size=4)
    assert_close(stems, expected)


# --- the plan -----------------------------------------------------------------------


def test_shift_offsets_without_length_are_plain_draws_from_the_seed(bag: Separator) -> None:
    rng = random.Random(42)
    drawn = [[rng.randint(0, SR // 2) for _ in range(3)] for _ in range(2)]
    assert draw_shift_offsets(bag, 3, 42) == drawn
    assert draw_shift_offsets(bag, 0, 42) == [[], []]


def test_shift_offsets_replay_the_draws_htdemucs_makes_per_window(single: Separator) -> None:
    """HTDemucs' forward advances ``random``: the offsets depend on windows run in between."""
    state = random.getstate()
    random.seed(3)
    expected = []
    with torch.no_grad():
        for _ in range(2):
            expected.append(random.randint(0, SR // 2))
            plan = SeparationPlan.build(single, 2 * SR + 4000 - expected[-1], overlap=0.25)
            for window in plan.windows:
                single.models[0](torch.zeros(1, 2, window.padded_length))
    random.setstate(state)
    assert draw_shift_offsets(single, 2, 3, length=2 * SR, overlap=0.25) == [expected]


def test_plan_is_small_and_picklable_without_weights(bag: Separator) -> None:
    plan = SeparationPlan.build(
        bag, 10 * SR, overlap=0.25, shift_offsets=draw_shift_offsets(bag, 2, 0)
    )
    data = pickle.dumps(plan)
    assert len(data) < 20_000
    assert pickle.loads(data) == plan
    assert len(plan) == len(plan.windows) == 2 * 2 * 14


def test_htdemucs_windows_share_one_shape_and_batches_cover_each_window_once(
    single: Separator,
) -> None:
    plan = SeparationPlan.build(single, 5 * SR + 17, overlap=0.25)
    assert {w.padded_length for w in plan.windows} == {SR}
    batches = plan.batches(3)
    assert all(
        len(b) <= 3 and len({(w.sub_model, w.padded_length) for w in b}) == 1 for b in batches
    )
    assert sorted(w.key for b in batches for w in b) == sorted(w.key for w in plan.windows)


def test_extract_pads_with_neighbour_context_and_zeros(single: Separator) -> None:
    mix = track(SR + 500)
    plan = SeparationPlan.build(single, mix.shape[-1], overlap=0.25)
    last = plan.windows[-1]
    window = plan.extract(mix, last)
    assert window.shape == (2, SR) and window.dtype == np.float32
    context = (SR - last.length) // 2
    np.testing.assert_array_equal(window[:, context : context + last.length], mix[:, last.offset :])
    np.testing.assert_array_equal(window[:, :context], mix[:, last.offset - context : last.offset])
    assert not window[:, context + last.length :].any()


def test_overlap_add_refuses_duplicates_strangers_and_early_results(single: Separator) -> None:
    plan = SeparationPlan.build(single, 2 * SR, overlap=0.25)
    acc = plan.accumulator()
    output = np.zeros((4, 2, SR), dtype=np.float32)
    acc.add(plan.windows[0], output)
    with pytest.raises(ValueError, match="already added"):
        acc.add(plan.windows[0], output)
    other = SeparationPlan.build(single, 9 * SR, overlap=0.25)
    with pytest.raises(ValueError, match="does not belong"):
        acc.add(other.windows[-1], output)
    with pytest.raises(ValueError, match="shape"):
        acc.add(plan.windows[1], output[:2])
    with pytest.raises(RuntimeError, match="not added"):
        acc.result()


def test_plan_rejects_bad_parameters(single: Separator) -> None:
    with pytest.raises(ValueError):
        SeparationPlan.build(single, 0, overlap=0.25)
    with pytest.raises(ValueError):
        SeparationPlan.build(single, SR, overlap=1.0)
    with pytest.raises(ValueError):
        SeparationPlan.build(single, SR, overlap=0.25, shift_offsets=[[SR]])


# --- normalisation ------------------------------------------------------------------


def test_normalise_matches_demucs_statistics() -> None:
    wav = 0.2 * track(SR * 5 + 3, seed=9) - 0.01
    out, norm = normalise(wav)
    ref = torch.from_numpy(wav).mean(0)
    expected = (torch.from_numpy(wav) - ref.mean()) / (ref.std() + 1e-8)
    np.testing.assert_allclose(out, expected.numpy(), rtol=0, atol=1e-5)
    assert norm.std == pytest.approx(ref.std().item(), rel=1e-5)


def test_silence_separates_into_silence(single: Separator) -> None:
    silence = np.zeros((2, SR + 10), dtype=np.float32)
    out, norm = normalise(silence)
    assert norm.std == 0.0 and not np.isnan(out).any()
    stems = separate(single, silence)
    assert stems.shape == (4, 2, SR + 10)
    assert not stems.any()


def test_one_sample_track_does_not_produce_nan(single: Separator) -> None:
    stems = separate(single, np.full((2, 1), 0.5, dtype=np.float32))
    assert stems.shape == (4, 2, 1)
    np.testing.assert_array_equal(stems, 0.5)
