"""What each ``stemscribe`` command does, given its parsed arguments."""

from __future__ import annotations

import argparse
from pathlib import Path

from stemscribe_client.live import stream_command
from stemscribe_client.session import Session, stem_outputs, succeeded
from stemscribe_client.tables import jobs_table, models_tables, show

__all__ = ["download", "jobs", "lyrics", "models", "separate", "stream", "transcribe"]


def separate(session: Session, args: argparse.Namespace) -> None:
    """Stems of ``args.file`` into ``<output>/<file stem>/<stem>.<format>``."""
    params = {
        "model": args.model,
        "stems": _names(args.stems),
        "two_stems": args.two_stems,
        "format": args.format,
        "bit_depth": args.bit_depth,
        "mp3_bitrate": args.mp3_bitrate,
        "shifts": args.shifts,
        "overlap": args.overlap,
    }
    job = session.run_job(args.file, "separations", params)
    targets = stem_outputs(job, args.output / args.file.stem)
    session.report(job, session.save(job, targets))


def transcribe(session: Session, args: argparse.Namespace) -> None:
    """``<file stem>.<format>`` next to the input, or in ``--output``."""
    params = {
        "model": args.model,
        "language": args.language,
        "task": "translate" if args.translate else None,
    }
    job = session.run_job(args.file, "transcriptions", params)
    directory = args.output if args.output is not None else args.file.parent
    target = directory / f"{args.file.stem}.{args.format}"
    session.report(job, session.save(job, {args.format: target}))


def lyrics(session: Session, args: argparse.Namespace) -> None:
    """Vocals, instrumental and lyrics (LRC, SRT, JSON) into ``<output>/<file stem>/``."""
    params = {
        "separation_model": args.separation_model,
        "model": args.model,
        "language": args.language,
        "format": args.format,
    }
    job = session.run_job(args.file, "lyrics", params)
    targets = stem_outputs(job, args.output / args.file.stem)
    session.report(job, session.save(job, targets))


def download(session: Session, args: argparse.Namespace) -> None:
    """Every output of a finished job; partial files of an earlier try are continued."""
    job = succeeded(session.client.job(args.job_id))
    directory = args.output if args.output is not None else Path(args.job_id)
    session.report(job, session.save(job, stem_outputs(job, directory), resume=True))


def jobs(session: Session, args: argparse.Namespace) -> None:
    """The newest jobs as a table, or the server's page as JSON."""
    page = session.client.jobs(args.limit)
    if session.as_json:
        session.print_json(page)
    else:
        show(session.stdout, jobs_table(page["jobs"]))


def models(session: Session, args: argparse.Namespace) -> None:
    """The server's models as tables, or as JSON."""
    catalogue = session.client.models()
    if session.as_json:
        session.print_json(catalogue)
    else:
        show(session.stdout, *models_tables(catalogue))


def stream(session: Session, args: argparse.Namespace) -> None:
    """Live captions of a file (paced at ``--speed``) or of the microphone."""
    options = {
        "sample_rate": args.sample_rate,
        "model": args.model,
        "language": args.language,
        "interim_results": not args.no_interim,
    }
    if not args.mic:
        options["speed"] = args.speed
    source = None if args.mic else args.file
    stream_command(
        session.client.base_url,
        source,
        as_json=session.as_json,
        token=session.client.api_key,
        options=options,
    )


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]
