"""Live transcription: WebSocket protocol, LocalAgreement-2 policy, decode contract.

Pure and Ray-free: the ingress holds one `StreamingSession` per socket and
sends each `DecodeRequest` to a stateless transcriber.
"""

from __future__ import annotations

from pipelines.streaming.agreement import LocalAgreement, normalize_word
from pipelines.streaming.decoding import (
    SAMPLE_RATE,
    DecodedSegment,
    DecodedWord,
    DecodeOptions,
    DecodeRequest,
    Transcribe,
    decode_with_model,
    sound_prefix,
)
from pipelines.streaming.degenerate import DegenerateLimits, degenerate_reason
from pipelines.streaming.params import AudioFormat, StreamParams, parse_stream_params
from pipelines.streaming.policy import SessionConfig, SpeechDetector, StreamingSession
from pipelines.streaming.protocol import (
    AudioChunk,
    ClientEvent,
    Close,
    Finalize,
    FrameDecoder,
    KeepAlive,
    ProtocolError,
    ServerEvent,
    closed,
    error,
    final,
    partial,
    pcm_to_float,
    ready,
)
from pipelines.streaming.resample import Resampler
from pipelines.streaming.vad import VadConfig, has_speech

__all__ = [
    "SAMPLE_RATE",
    "AudioChunk",
    "AudioFormat",
    "ClientEvent",
    "Close",
    "DecodeOptions",
    "DecodeRequest",
    "DecodedSegment",
    "DecodedWord",
    "DegenerateLimits",
    "Finalize",
    "FrameDecoder",
    "KeepAlive",
    "LocalAgreement",
    "ProtocolError",
    "Resampler",
    "ServerEvent",
    "SessionConfig",
    "SpeechDetector",
    "StreamParams",
    "StreamingSession",
    "Transcribe",
    "VadConfig",
    "closed",
    "decode_with_model",
    "degenerate_reason",
    "error",
    "final",
    "has_speech",
    "normalize_word",
    "parse_stream_params",
    "partial",
    "pcm_to_float",
    "ready",
    "sound_prefix",
]
