"""Live windows of many sessions decoded together: one batched encode and generate.

`decode_batch` gives each request what `decode_with_model` would: it runs
faster-whisper's decode loop (``WhisperModel.generate_segments`` with the options
`decode_with_model` passes) over all windows at once — one ``encode`` and one
``generate`` per round on the CTranslate2 model, each window with its own prompt
and token budget — then word timestamps per window with faster-whisper's own
alignment code, then the degenerate-output guard (`guard_decode`) for the
windows whose first attempt it rejects (rare; those retry one by one).

Windows are shorter than Whisper's 30 s, so most take one round; a window whose
decode stops before its end (no closing timestamp) takes another round from the
last timestamp, as faster-whisper does. A multilingual model asked to detect the
language decodes that window alone (`decode_with_model`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment, WhisperModel, Word, get_suppressed_tokens
from faster_whisper.utils import get_end

from pipelines.streaming.decoding import (
    DecodedSegment,
    DecodeOptions,
    DecodeRequest,
    decode_with_model,
    guard_decode,
    max_new_tokens,
    to_decoded,
)

__all__ = ["decode_batch"]

_DEFAULTS = {
    name: param.default
    for name, param in inspect.signature(WhisperModel.transcribe).parameters.items()
}
"""faster-whisper's own defaults, so the batched loop follows the single decode."""


@dataclass
class _Window:
    """One request's state through the rounds of the decode loop."""

    request: DecodeRequest
    tokenizer: Tokenizer
    features: np.ndarray
    prompt: list[int]
    budget: int
    seek: int = 0
    last_speech: float = 0.0
    segments: list[DecodedSegment] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return int(self.features.shape[-1]) - 1

    def size(self, model: WhisperModel) -> int:
        return min(model.feature_extractor.nb_max_frames, self.frames - self.seek)


def decode_batch(
    model: WhisperModel, requests: Sequence[DecodeRequest], options: DecodeOptions | None = None
) -> list[list[DecodedSegment]]:
    """`decode_with_model` for every request, with the first attempts batched."""
    options = options or DecodeOptions()
    alone = [model.model.is_multilingual and r.language is None for r in requests]
    windows = [_window(model, r, options) for r, a in zip(requests, alone, strict=True) if not a]
    while active := [w for w in windows if w.seek < w.frames]:
        _round(model, active, options)
    firsts = iter(windows)
    return [
        decode_with_model(model, request, options)
        if single
        else guard_decode(model, request, next(firsts).segments, options)
        for request, single in zip(requests, alone, strict=True)
    ]


def _window(model: WhisperModel, request: DecodeRequest, options: DecodeOptions) -> _Window:
    multilingual = model.model.is_multilingual
    language = request.language if multilingual else "en"
    tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=language)
    prompt = tokenizer.encode(" " + request.prompt.strip()) if request.prompt else []
    return _Window(
        request=request,
        tokenizer=tokenizer,
        features=model.feature_extractor(request.audio),
        prompt=prompt,
        budget=max_new_tokens(request, options),
    )


def _round(model: WhisperModel, windows: list[_Window], options: DecodeOptions) -> None:
    """One pass of the decode loop for every window still short of its end."""
    chunks = [pad_or_trim(w.features[:, w.seek : w.seek + w.size(model)]) for w in windows]
    batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(chunks)))
    # On the CPU side, so that windows can be generated in groups and aligned alone.
    states = np.asarray(model.model.encode(batch, to_cpu=True))
    prompts = [model.get_prompt(w.tokenizer, w.prompt) for w in windows]
    # CTranslate2 needs <|startoftranscript|> at one position across a generate
    # batch, so windows are generated in groups of equal prompt length.
    groups: dict[int, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(len(prompt), []).append(index)
    for members in groups.values():
        picked = _storage(states[members])
        group = [windows[i] for i in members]
        results = _generate(model, picked, [prompts[i] for i in members], group, options)
        for index, result in zip(members, results, strict=True):
            _advance(model, windows[index], result, _storage(states[index : index + 1]))


def _storage(array: np.ndarray) -> ctranslate2.StorageView:
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


def _generate(
    model: WhisperModel,
    encoded: ctranslate2.StorageView,
    prompts: list[list[int]],
    windows: list[_Window],
    options: DecodeOptions,
) -> list[Any]:
    budget = max(w.budget for w in windows)
    return list(
        model.model.generate(
            encoded,
            prompts,
            beam_size=options.beam_size,
            patience=_DEFAULTS["patience"],
            length_penalty=_DEFAULTS["length_penalty"],
            repetition_penalty=_DEFAULTS["repetition_penalty"],
            no_repeat_ngram_size=_DEFAULTS["no_repeat_ngram_size"],
            # One limit per call: the largest; each window is cut to its own budget.
            max_length=len(prompts[0]) + budget,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=_DEFAULTS["suppress_blank"],
            suppress_tokens=get_suppressed_tokens(windows[0].tokenizer, [-1]),
            max_initial_timestamp_index=round(_DEFAULTS["max_initial_timestamp"] / 0.02),
        )
    )


def _advance(model: WhisperModel, window: _Window, result: Any, state: Any) -> None:
    """What ``generate_segments`` does with one window's result (word timestamps on,
    no previous-text conditioning: the prompt serves the first round only)."""
    tokens = list(result.sequences_ids[0])
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
    tokens = tokens[: window.budget]
    size = window.size(model)
    time_per_frame = model.feature_extractor.time_per_frame
    silent = result.no_speech_prob > _DEFAULTS["no_speech_threshold"]
    if silent and not avg_logprob > _DEFAULTS["log_prob_threshold"]:
        window.seek += size
        return  # faster-whisper skips the window and keeps the prompt
    window.prompt = []
    offset = window.seek * time_per_frame
    current, window.seek, single_ending = model._split_segments_by_timestamps(
        tokenizer=window.tokenizer,
        tokens=tokens,
        time_offset=offset,
        segment_size=size,
        segment_duration=size * time_per_frame,
        seek=window.seek,
    )
    model.add_word_timestamps(
        [current],
        window.tokenizer,
        state,
        size,
        _DEFAULTS["prepend_punctuations"],
        _DEFAULTS["append_punctuations"],
        last_speech_timestamp=window.last_speech,
    )
    last_word_end = get_end(current)
    if not single_ending and last_word_end is not None and last_word_end > offset:
        window.seek = round(last_word_end * model.frames_per_second)
    if last_word_end is not None:
        window.last_speech = last_word_end
    for segment in current:
        text = window.tokenizer.decode(segment["tokens"])
        if segment["start"] == segment["end"] or not text.strip():
            continue
        window.segments.append(_decoded(segment, text, avg_logprob, result.no_speech_prob))


def _decoded(
    segment: dict[str, Any], text: str, avg_logprob: float, no_speech: float
) -> DecodedSegment:
    return to_decoded(
        Segment(
            id=0,
            seek=segment["seek"],
            start=segment["start"],
            end=segment["end"],
            text=text,
            tokens=segment["tokens"],
            avg_logprob=avg_logprob,
            compression_ratio=0.0,
            no_speech_prob=no_speech,
            words=[Word(**word) for word in segment["words"]],
            temperature=0.0,
        )
    )
