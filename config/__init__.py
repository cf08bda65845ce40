"""Configuration: ``AppArgs`` (the deployment shape, from YAML) and ``Settings`` (environment)."""

from config.app_args import AppArgs, AutoscalingArgs, DeploymentArgs, LimitsArgs, parse_app_args
from config.compat import CompatArgs
from config.jobs import JobsArgs
from config.models import SeparationArgs, TranscriptionArgs
from config.settings import Settings

__all__ = [
    "AppArgs",
    "AutoscalingArgs",
    "CompatArgs",
    "DeploymentArgs",
    "JobsArgs",
    "LimitsArgs",
    "SeparationArgs",
    "Settings",
    "TranscriptionArgs",
    "parse_app_args",
]
