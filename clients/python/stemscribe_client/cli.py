"""The ``stemscribe`` command: stems, transcripts, lyrics and live captions from a shell.

Exit status: 0 success, 1 failure (one line on stderr says why), 2 usage error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from stemscribe_client import commands
from stemscribe_client.api import DEFAULT_URL, Client, ClientError
from stemscribe_client.progress import Progress
from stemscribe_client.session import Session

__all__ = ["build_parser", "main"]

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

Command = Callable[[Session, argparse.Namespace], None]


def _common(suppress: bool) -> argparse.ArgumentParser:
    """Options every command takes, before or after its name."""
    default = argparse.SUPPRESS if suppress else None
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=default, help=f"server (STEMSCRIBE_URL, {DEFAULT_URL})")
    common.add_argument("--api-key", default=default, help="API key (STEMSCRIBE_API_KEY)")
    flag = {"default": argparse.SUPPRESS} if suppress else {"default": False}
    common.add_argument("--json", action="store_true", help="JSON on stdout, no bars", **flag)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars", **flag)
    return common


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(
        prog="stemscribe",
        description="Stem separation and transcription with a stemscribe server.",
        epilog="exit status: 0 success, 1 failure, 2 usage error, 130 interrupted",
        parents=[_common(False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common(True)

    def add(name: str, run: Command, help: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, description=help, parents=[common])
        command.set_defaults(run=run)
        return command

    _separate(add("separate", commands.separate, "split a song into stems"))
    _transcribe(add("transcribe", commands.transcribe, "transcribe speech to subtitles or text"))
    _lyrics(add("lyrics", commands.lyrics, "vocals, instrumental and timed lyrics of a song"))
    _stream(add("stream", commands.stream, "live captions of a file or the microphone"))
    jobs = add("jobs", commands.jobs, "your recent jobs")
    jobs.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    add("models", commands.models, "the server's models")
    _download(add("download", commands.download, "download (or resume) a finished job's files"))
    return parser


def _separate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="audio file (any format FFmpeg reads)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("."),
        help="stems go to OUTPUT/<file stem>/ (default: .)",
    )
    parser.add_argument("--model", help="Demucs model (server default if unset)")
    stems = parser.add_mutually_exclusive_group()
    stems.add_argument("--stems", help="comma-separated subset, e.g. vocals,drums")
    stems.add_argument("--two-stems", metavar="STEM", help="STEM and no_STEM, e.g. vocals")
    parser.add_argument("--format", choices=["wav", "flac", "mp3"], help="stem format (wav)")
    parser.add_argument("--bit-depth", type=int, choices=[16, 24, 32], help="wav only (16)")
    parser.add_argument("--mp3-bitrate", type=int, metavar="KBPS", help="mp3 only (320)")
    parser.add_argument("--shifts", type=int, help="random shifts averaged (1)")
    parser.add_argument("--overlap", type=float, help="window overlap (0.25)")


def _transcribe(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="audio or video file")
    parser.add_argument(
        "--format",
        choices=["srt", "vtt", "txt", "json"],
        default="srt",
        help="what to write (default srt)",
    )
    parser.add_argument("--model", help="Whisper model (server default if unset)")
    parser.add_argument("--language", help="language code (default: detect)")
    parser.add_argument("--translate", action="store_true", help="translate to English")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="directory of <file stem>.<format> (default: next to the input)",
    )


def _lyrics(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a song")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("."),
        help="files go to OUTPUT/<file stem>/ (default: .)",
    )
    parser.add_argument("--separation-model", help="Demucs model for the vocals")
    parser.add_argument("--model", help="Whisper model for the lyrics")
    parser.add_argument("--language", help="language code (default: detect)")
    parser.add_argument("--format", choices=["wav", "flac", "mp3"], help="stem format (wav)")


def _stream(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("file", type=Path, nargs="?", help="audio file to stream")
    source.add_argument("--mic", action="store_true", help="the default input device")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="file pace in times real time; 0: as fast as possible",
    )
    parser.add_argument("--sample-rate", type=int, default=16_000, help="rate sent at")
    parser.add_argument("--model", help="Whisper model (server default if unset)")
    parser.add_argument("--language", help="language code (default: detect)")
    parser.add_argument("--no-interim", action="store_true", help="finals only")


def _download(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", help="a succeeded job")
    parser.add_argument("-o", "--output", type=Path, help="directory (default: ./JOB_ID)")


def session_for(args: argparse.Namespace) -> Session:
    """The server and output mode from flags, then the environment."""
    url = args.url or os.environ.get("STEMSCRIBE_URL") or DEFAULT_URL
    api_key = args.api_key or os.environ.get("STEMSCRIBE_API_KEY") or None
    progress = Progress(quiet=args.quiet or args.json)
    return Session(Client(url, api_key), progress, as_json=args.json)


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status as documented above."""
    args = build_parser().parse_args(argv)
    session = session_for(args)
    try:
        args.run(session, args)
    except ClientError as exc:
        return _fail(str(exc))
    except OSError as exc:  # local files: permissions, disk full
        return _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        print("stemscribe: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        session.close()
    return 0


def _fail(reason: str) -> int:
    print(f"stemscribe: error: {' '.join(reason.split())}", file=sys.stderr)
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
