"""pipelines.audio: decode, encode, probe and clip against real FFmpeg codecs."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from demucs.audio import convert_audio_channels, prevent_clip

from pipelines import _audio_codecs as codecs
from pipelines import audio
from pipelines.errors import AudioTooLong, InvalidRequest, UnsupportedAudio
from tests import audio_factory as factory

pytestmark = pytest.mark.unit

SR = 44100


@pytest.fixture(scope="module")
def stereo() -> np.ndarray:
    return factory.sine_mix(2.0, SR)


def decode(
    data: audio.AudioSource,
    *,
    sample_rate: int = SR,
    channels: int = 2,
    max_duration: float | None = None,
) -> np.ndarray:
    return audio.decode(data, sample_rate=sample_rate, channels=channels, max_duration=max_duration)


def flac_bits_per_sample(data: bytes) -> int:
    fields = int.from_bytes(data[18:26], "big")  # see factory.flac_declaring
    return ((fields >> 36) & 0x1F) + 1


# Round trips ---------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_float_wav_round_trip_is_bit_exact(sample_rate: int, channels: int) -> None:
    wav = factory.sine_mix(1.0, sample_rate, channels) * 3  # floats beyond ±1 kept
    wav[0, :4] = [0.0, -0.0, 1e-40, -1.0]  # signed zero and a subnormal too
    data = audio.encode(wav, sample_rate, format="wav", bit_depth=32)
    out = audio.decode(data, sample_rate=sample_rate, channels=channels)
    assert out.dtype == np.float32 and out.shape == wav.shape
    assert out.tobytes() == wav.tobytes()


@pytest.mark.parametrize(("format", "bits"), [("wav", 16), ("wav", 24), ("flac", 16), ("flac", 24)])
def test_integer_pcm_round_trip_within_quantisation(
    stereo: np.ndarray, format: audio.FormatName, bits: audio.BitDepth
) -> None:
    data = audio.encode(stereo, SR, format=format, bit_depth=bits)
    out = decode(data)
    assert out.shape == stereo.shape
    np.testing.assert_allclose(out, stereo, rtol=0, atol=2.0 ** -(bits - 2))
    assert not np.array_equal(out, stereo)  # really quantised


def test_flac_is_lossless_and_has_the_asked_bit_depth(stereo: np.ndarray) -> None:
    for bits in (16, 24):
        flac = audio.encode(stereo, SR, format="flac", bit_depth=bits)
        wav = audio.encode(stereo, SR, format="wav", bit_depth=bits)
        assert flac_bits_per_sample(flac) == bits
        assert np.array_equal(decode(flac), decode(wav))
        assert len(flac) < len(wav)


@pytest.mark.parametrize("bits", [16, 24])
def test_integer_pcm_saturates_instead_of_wrapping(bits: audio.BitDepth) -> None:
    wav = np.array([[1.5, -1.5, 1.0, -1.0, 0.5]], dtype=np.float32)
    out = decode(audio.encode(wav, SR, bit_depth=bits), channels=1)
    np.testing.assert_allclose(out, [[1, -1, 1, -1, 0.5]], atol=2.0 ** -(bits - 2))


@pytest.mark.parametrize("kbps", [128, 320])
def test_mp3_round_trip_keeps_duration_and_signal(stereo: np.ndarray, kbps: int) -> None:
    data = audio.encode(stereo, SR, format="mp3", mp3_bitrate=kbps)
    assert audio.probe(data).codec == "mp3"
    assert abs(len(data) * 8 / 2.0 / 1000 - kbps) < 0.1 * kbps
    out = decode(data)
    # The LAME header carries encoder delay and padding; FFmpeg trims both.
    assert abs(out.shape[1] - stereo.shape[1]) <= 1152
    n = min(out.shape[1], stereo.shape[1])
    for left, right in zip(out[:, :n], stereo[:, :n], strict=True):
        assert np.corrcoef(left, right)[0, 1] > 0.95


def test_encoding_is_deterministic(stereo: np.ndarray) -> None:
    for format in ("wav", "flac", "mp3"):
        first = audio.encode(stereo, SR, format=format)
        assert audio.encode(stereo, SR, format=format) == first


# Other input formats -------------------------------------------------------


@pytest.mark.parametrize(
    ("format", "codec", "rate"),
    [
        ("m4a", "aac", SR),
        ("aac", "aac", SR),
        ("ogg", "vorbis", SR),
        ("opus", "opus", 48000),
    ],
)
def test_decodes_upload_formats(stereo: np.ndarray, format: str, codec: str, rate: int) -> None:
    data = factory.write_audio(None, stereo, SR, format)
    info = audio.probe(data)
    assert (info.codec, info.sample_rate, info.channels) == (codec, rate, 2)
    assert info.duration == pytest.approx(2.0, abs=0.07)
    out = decode(data)
    assert out.shape[1] / SR == pytest.approx(2.0, abs=0.05)
    rms = np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(stereo**2))
    assert 0.7 < rms < 1.3


def test_takes_the_first_audio_stream_of_a_video(stereo: np.ndarray) -> None:
    data = factory.video_with_audio(None, stereo, SR)
    with av.open(io.BytesIO(data)) as container:
        assert container.streams[0].type == "video"
    assert audio.probe(data).codec == "aac"
    assert decode(data).shape[1] / SR == pytest.approx(2.0, abs=0.05)


def test_reads_paths_and_file_objects_alike(stereo: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "track.flac"
    data = factory.write_audio(path, stereo, SR, "flac")
    expected = decode(data)
    file = io.BytesIO(data)
    file.seek(100)  # rewound before reading
    for source in (path, str(path), file, factory.unseekable(data)):
        assert np.array_equal(decode(source), expected)
    assert audio.probe(path) == audio.probe(data)


def test_a_missing_path_is_not_blamed_on_the_audio(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        audio.probe(tmp_path / "missing.wav")


# Resampling and channels ---------------------------------------------------


def test_resampling_keeps_duration_and_pitch() -> None:
    data = audio.encode(factory.tone(1000.0, 2.0, 48000, 2), 48000, bit_depth=32)
    out = decode(data)
    assert abs(out.shape[1] - 2 * SR) <= 2
    spectrum = np.abs(np.fft.rfft(out[0]))
    assert np.argmax(spectrum) * SR / out.shape[1] == pytest.approx(1000.0, abs=1.0)
    assert np.max(np.abs(out)) == pytest.approx(0.5, abs=0.01)


def test_downsamples_for_speech_models(stereo: np.ndarray) -> None:
    out = decode(audio.encode(stereo, SR), sample_rate=16000, channels=1)
    assert out.shape[0] == 1 and abs(out.shape[1] - 32000) <= 2


def test_channel_conversion_matches_demucs(stereo: np.ndarray) -> None:
    mono = stereo[:1]
    six = factory.sine_mix(1.0, SR, channels=6)
    cases = [(stereo, 1), (mono, 2), (six, 2), (stereo, 2)]
    for wav, channels in cases:
        data = audio.encode(wav, SR, bit_depth=32)
        expected = convert_audio_channels(torch.from_numpy(wav), channels).numpy()
        assert np.array_equal(decode(data, channels=channels), expected)
    # Beyond two channels torch sums in another order: last-bit differences.
    expected = convert_audio_channels(torch.from_numpy(six), 1).numpy()
    np.testing.assert_allclose(audio.convert_channels(six, 1), expected, rtol=0, atol=1e-7)


def test_refuses_to_invent_channels(stereo: np.ndarray) -> None:
    with pytest.raises(UnsupportedAudio, match="2 channels"):
        decode(audio.encode(stereo, SR), channels=3)


def test_follows_a_sample_rate_change_mid_stream() -> None:
    first = audio.encode(factory.sine_mix(1.0, 44100), 44100, format="mp3")
    second = audio.encode(factory.sine_mix(1.0, 48000), 48000, format="mp3")
    out = decode(first + second)
    assert out.shape[1] / SR == pytest.approx(2.0, abs=0.1)


def test_decoded_blocks_are_long_and_add_up_to_the_track(tmp_path: Path) -> None:
    wav = factory.sine_mix(5.0, SR)  # FFmpeg hands WAV over in frames of a few thousand
    path = tmp_path / "five.wav"
    path.write_bytes(audio.encode(wav, SR, format="wav", bit_depth=32))
    blocks = list(audio.decode_blocks(path, sample_rate=SR, channels=2))
    sizes = [b.shape[1] for b in blocks]
    assert len(blocks) > 1
    assert min(sizes[:-1]) >= codecs.DECODE_BLOCK
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), wav)


@pytest.mark.parametrize("layout", ["planar", "interleaved"])
def test_interleave_gives_frames_in_turn(layout: str) -> None:
    frames = np.arange(3 * 1001, dtype=np.float32).reshape(1001, 3)
    samples = np.ascontiguousarray(frames.T) if layout == "planar" else frames.T
    out = audio.interleave(samples)
    np.testing.assert_array_equal(out, frames)
    assert out.flags.c_contiguous
    # Already interleaved memory is handed back as it is, without a copy.
    assert np.shares_memory(out, frames) == (layout == "interleaved")


# Probe ----------------------------------------------------------------------


def test_probe_reads_headers(stereo: np.ndarray) -> None:
    wav = audio.encode(stereo[:1], SR, bit_depth=24)
    assert audio.probe(wav) == audio.AudioInfo(2.0, SR, 1, "pcm_s24le", "wav")
    info = audio.probe(audio.encode(stereo, SR, format="flac"))
    assert (info.duration, info.codec, info.container) == (2.0, "flac", "flac")


def test_probe_reports_zero_when_the_length_is_unknown(stereo: np.ndarray) -> None:
    stream = factory.unseekable(factory.streaming_wav(stereo, SR))
    assert audio.probe(stream).duration == 0.0


# Broken input ---------------------------------------------------------------


def broken_inputs() -> dict[str, bytes]:
    wav = audio.encode(factory.sine_mix(1.0, SR), SR)
    return {
        "random bytes": factory.random_bytes(4096),
        "zero length": b"",
        "truncated header": factory.truncated(wav, 30),
        "wav header then garbage": factory.wav_header_with_garbage(),
        "m4a cut before its index": factory.truncated(
            factory.write_audio(None, factory.sine_mix(1.0, SR), SR, "m4a")
        ),
    }


@pytest.mark.parametrize("name", list(broken_inputs()))
def test_undecodable_input_is_unsupported_audio(name: str) -> None:
    data = broken_inputs()[name]
    for call in (audio.probe, decode):
        with pytest.raises(UnsupportedAudio, match="Failed to decode audio") as caught:
            call(data)
        assert isinstance(caught.value.__cause__, av.FFmpegError)


def test_video_without_audio_says_so() -> None:
    data = factory.video_without_audio()
    with pytest.raises(UnsupportedAudio, match="no audio stream"):
        audio.probe(data)
    with pytest.raises(UnsupportedAudio, match="no audio stream"):
        decode(data)


def test_audio_without_samples_is_unsupported() -> None:
    silence = np.zeros((2, 0), np.float32)
    for format in ("wav", "flac"):
        data = audio.encode(silence, SR, format=format)
        with pytest.raises(UnsupportedAudio, match="no audio samples"):
            audio.probe(data)  # a valid, empty file: refused before any job
        with pytest.raises(UnsupportedAudio, match="no audio samples"):
            decode(data)
    with pytest.raises(UnsupportedAudio):  # FFmpeg finds no stream in it at all
        decode(audio.encode(silence, SR, format="mp3"))
    with pytest.raises(UnsupportedAudio, match="no audio samples"):
        decode(factory.unseekable(factory.streaming_wav(silence, SR)))


def test_a_few_corrupt_packets_are_skipped_many_are_not(stereo: np.ndarray) -> None:
    data = bytearray(audio.encode(stereo, SR, format="mp3"))
    middle = len(data) // 2
    data[middle : middle + 1000] = factory.random_bytes(1000)
    assert decode(bytes(data)).shape[1] / SR == pytest.approx(2.0, abs=0.1)
    data[middle:] = factory.random_bytes(len(data) - middle)
    with pytest.raises(UnsupportedAudio, match="corrupt"):
        decode(bytes(data))


# Duration limits ------------------------------------------------------------


def test_declared_length_over_the_limit_fails_before_decoding(
    stereo: np.ndarray,
) -> None:
    # Two seconds of audio that claim 100: only the header can trip a 10 s limit.
    data = factory.flac_declaring(stereo, SR, declared=100.0)
    with pytest.raises(AudioTooLong) as caught:
        decode(data, max_duration=10)
    assert caught.value.details == {"duration": 100.0, "max_duration": 10}


def test_a_header_understating_the_length_is_caught_while_decoding() -> None:
    data = factory.flac_declaring(factory.sine_mix(5.0, SR), SR, declared=1.0)
    assert audio.probe(data).duration == 1.0
    assert decode(data).shape[1] == 5 * SR
    with pytest.raises(AudioTooLong, match="more than"):
        decode(data, max_duration=3)


def test_a_stream_without_a_length_is_caught_while_decoding() -> None:
    data = factory.streaming_wav(factory.sine_mix(3.0, SR), SR)
    with pytest.raises(AudioTooLong):
        decode(factory.unseekable(data), max_duration=2)


def test_audio_at_the_limit_passes(stereo: np.ndarray) -> None:
    for format in ("wav", "mp3"):
        data = audio.encode(stereo, SR, format=format)
        assert decode(data, max_duration=2.0).shape[1] >= 2 * SR


# Encode parameters ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"format": "flac", "bit_depth": 32}, "bit_depth"),
        ({"format": "wav", "bit_depth": 8}, "bit_depth"),
        ({"format": "mp3", "mp3_bitrate": 100}, "mp3_bitrate"),
        ({"format": "ogg"}, "format"),
    ],
)
def test_encode_refuses_bad_parameters(stereo: np.ndarray, kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        audio.encode(stereo, SR, **kwargs)
    assert caught.value.details["field"] == field


def test_mp3_limits() -> None:
    with pytest.raises(InvalidRequest, match="1 or 2 channels"):
        audio.encode(factory.sine_mix(0.1, SR, channels=3), SR, format="mp3")
    with pytest.raises(InvalidRequest):
        audio.encode(factory.sine_mix(0.1, 96000), 96000, format="mp3")


def test_formats_name_extension_and_content_type() -> None:
    assert {f: (audio.extension(f), audio.content_type(f)) for f in audio.FORMATS} == {
        "wav": ("wav", "audio/wav"),
        "flac": ("flac", "audio/flac"),
        "mp3": ("mp3", "audio/mpeg"),
    }
    with pytest.raises(InvalidRequest):
        audio.content_type("aiff")


# Clipping -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["rescale", "clamp", "none"])
@pytest.mark.parametrize("gain", [0.5, 3.0])
def test_clip_matches_demucs(stereo: np.ndarray, mode: audio.ClipMode, gain: float) -> None:
    wav = stereo * np.float32(gain)
    expected = prevent_clip(torch.from_numpy(wav), mode).numpy()
    assert np.array_equal(audio.clip(wav, mode), expected)


def test_clip_modes_keep_within_range(stereo: np.ndarray) -> None:
    loud = stereo * np.float32(10)
    assert np.abs(audio.clip(loud, "rescale")).max() == pytest.approx(1 / 1.01)
    assert np.abs(audio.clip(loud, "clamp")).max() == np.float32(0.99)
    assert audio.clip(loud, "none") is loud
    assert np.array_equal(audio.clip(stereo, "rescale"), stereo)  # quiet: unchanged
    with pytest.raises(InvalidRequest):
        audio.clip(stereo, "tanh")  # type: ignore[arg-type]


def test_eight_channels_decode_to_the_first_two() -> None:
    # Planar frames of 8 or more channels once made PyAV read past their planes (a segfault).
    wav = factory.sine_mix(0.5, SR, channels=8)
    data = audio.encode(wav, SR, format="wav", bit_depth=32)
    assert audio.probe(data).channels == 8
    assert decode(data).tobytes() == wav[:2].tobytes()
    np.testing.assert_allclose(decode(data, channels=1)[0], wav.mean(axis=0), atol=1e-6)


def test_nan_and_infinite_samples_are_unsupported(stereo: np.ndarray) -> None:
    for value in (np.nan, np.inf):
        wav = stereo.copy()
        wav[1, 1000] = value
        data = audio.encode(wav, SR, format="wav", bit_depth=32)
        with pytest.raises(UnsupportedAudio, match="NaN or infinite"):
            decode(data)


def test_an_impossible_sample_rate_is_unsupported(stereo: np.ndarray) -> None:
    data = bytearray(audio.encode(stereo, SR))
    data[24:28] = (2**31 - 1).to_bytes(4, "little")  # the fmt chunk's sample rate
    for call in (audio.probe, decode):
        with pytest.raises(UnsupportedAudio, match="sample rate"):
            call(bytes(data))
