"""The API fuzzed from its own ``/openapi.json``: no 5xx, and every error in its shape.

Stemscribe's routes answer ``{"error": {"code", "message", "details"}}``; the
OpenAI-compatible ones answer OpenAI's ``{"error": {"message", "type", "param",
"code"}}``. Bounded here: ``STEMSCRIBE_FUZZ_EXAMPLES`` cases per operation and
generation mode (10 by default, a few hundred requests in all), derandomized unless
``STEMSCRIBE_FUZZ_SEED`` is set. ``make fuzz`` (``scripts/fuzz_api.py``) runs the
same test with a bigger budget and a fresh seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from config import Settings
from deployments.api import Services, create_api
from deployments.api.urls import files_url
from pipelines.jobs import JobStore
from pipelines.jobs.scratch import ScratchSpace
from pipelines.separation import Separator
from pipelines.storage import LocalStorage, open_storage
from tests.api.conftest import make_args
from tests.fakes import InProcessLauncher, InProcessTranscriber

EXAMPLES = int(os.environ.get("STEMSCRIBE_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("STEMSCRIBE_FUZZ_SEED")

pytestmark = [pytest.mark.api, pytest.mark.timeout(max(120, 6 * EXAMPLES))]

OPENAI_PREFIX = "/v1/audio/"


class HeldLauncher(InProcessLauncher):
    """Accepts jobs without running them: the fuzzer is after the HTTP layer."""

    async def submit(self, kind: str, job_id: str) -> None:
        self.submitted.append(job_id)


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory,
    model_repo: Path,
    separators: dict[str, Separator],
    transcriber: InProcessTranscriber,
) -> schemathesis.BaseSchema:
    settings_ = Settings(
        storage_backend="local",
        data_dir=tmp_path_factory.mktemp("fuzz"),
        scratch_dir=tmp_path_factory.mktemp("fuzz-scratch"),
    )
    storage = open_storage(settings_, files_url=files_url(settings_))
    assert isinstance(storage, LocalStorage)
    args, jobs = make_args(model_repo, requests_per_minute=0), JobStore(storage)
    scratch = ScratchSpace(settings_.scratch_dir)
    launcher = HeldLauncher(jobs, args, separators, transcriber, scratch)
    services = Services(args, settings_, storage, jobs, launcher, transcriber, storage.url_signer)
    return schemathesis.openapi.from_asgi("/openapi.json", create_api(services))


def error_shape(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """4xx bodies are JSON errors: OpenAI's shape on its routes, ours everywhere else."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    if case.operation.path.startswith(OPENAI_PREFIX):
        assert set(error) == {"message", "type", "param", "code"}, error
        assert error["type"] == "invalid_request_error", error
    else:
        assert set(error) == {"code", "message", "details"}, error
        assert isinstance(error["details"], dict), error
    assert isinstance(error["code"], str) and error["code"].islower(), error
    assert isinstance(error["message"], str) and error["message"], error
    assert "Traceback" not in response.text


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error, error_shape])

    (run if SEED is None else seed(int(SEED))(run))()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_and_errors_keep_their_shape(
    api_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    failures = []
    for operation in api_schema.get_all_operations():
        try:
            fuzz(operation.ok(), mode)
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing in it can be made invalid
        except (AssertionError, BaseExceptionGroup) as exc:  # report every operation's failure
            failures.append(f"{operation.ok().label}: {exc}")
    assert not failures, "\n\n".join(failures)
