"""The processing core of stemscribe: audio, separation, transcription, storage, jobs.

Nothing under this package imports ``ray``; deployments call into it.
"""
