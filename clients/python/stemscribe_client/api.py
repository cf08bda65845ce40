"""A small HTTP client of the stemscribe API: JSON calls, job events, readable errors."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx

__all__ = ["ApiError", "Client", "ClientError", "describe_failure", "reaching"]

Job = dict[str, Any]

DEFAULT_URL = "http://localhost:8000"
FINISHED = {"succeeded", "failed", "cancelled"}
EVENT_RECONNECTS = 5


class ClientError(Exception):
    """A failure worth one line to the user: its ``str`` is that line."""


class ApiError(ClientError):
    """The server answered with an error; ``message`` is the server's own sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def describe_failure(response: httpx.Response) -> ApiError:
    """The error a non-2xx answer carries: the API's JSON error, an S3 XML ``<Message>``,
    or the status line."""
    response.read()
    code, message = f"http_{response.status_code}", ""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    if not message:
        found = re.search(r"<Message>(.*?)</Message>", response.text, re.S)
        message = found.group(1).strip() if found else ""
    if not message:
        message = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return ApiError(response.status_code, code, " ".join(message.split()))


@contextlib.contextmanager
def reaching(what: str, url: str) -> Iterator[None]:
    """Turn transport failures of a request to ``url`` into one-line `ClientError` s."""
    try:
        yield
    except httpx.ConnectError:
        raise ClientError(f"cannot reach {what} at {_origin(url)}") from None
    except httpx.TimeoutException:
        raise ClientError(f"{what} at {_origin(url)} did not answer in time") from None
    except httpx.TransportError as exc:
        raise ClientError(f"connection to {what} at {_origin(url)} failed: {exc}") from None


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


class Client:
    """Calls to one server; the API key (if any) goes out as ``Authorization: Bearer``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; its JSON answer, or `ApiError` with the server's message."""
        with reaching("server", self.base_url):
            response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise describe_failure(response)
        return response.json() if response.content else None

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``."""
        return dict(self.call("GET", "/v1/models"))

    def jobs(self, limit: int = 20) -> dict[str, Any]:
        """``GET /v1/jobs``: the newest ``limit`` jobs and the next page's cursor."""
        return dict(self.call("GET", "/v1/jobs", params={"limit": limit}))

    def job(self, job_id: str) -> Job:
        """``GET /v1/jobs/{id}``."""
        return dict(self.call("GET", f"/v1/jobs/{job_id}"))

    def reserve_upload(self, filename: str, size: int, content_type: str) -> dict[str, Any]:
        """``POST /v1/uploads``: ``{upload_id, put_url, headers, ...}``."""
        body = {"filename": filename, "bytes": size, "content_type": content_type}
        return dict(self.call("POST", "/v1/uploads", json=body))

    def submit(self, endpoint: str, upload_id: str, params: dict[str, Any]) -> Job:
        """``POST /v1/{endpoint}`` with a stored upload as input: the accepted job."""
        body = {"input": {"upload_id": upload_id}, **params}
        return dict(self.call("POST", f"/v1/{endpoint}", json=body))

    def events(self, job_id: str) -> Iterator[tuple[str, Any]]:
        """``(event, data)`` pairs of the job's Server-Sent Events until the stream ends."""
        url = f"/v1/jobs/{job_id}/events"
        with reaching("server", self.base_url), self._http.stream("GET", url) as response:
            if response.is_error:
                raise describe_failure(response)
            yield from _sse(response.iter_lines())

    def follow(self, job_id: str, on_progress: Callable[[float], None]) -> Job:
        """Follow a job to its end through its events (reconnecting if the stream drops)."""
        for _ in range(EVENT_RECONNECTS):
            with contextlib.suppress(ClientError):
                for event, data in self.events(job_id):
                    if event == "progress":
                        on_progress(float(data["progress"]))
                    elif event == "result":
                        return dict(data)
            job = self.job(job_id)
            if job["status"] in FINISHED:
                return job
        raise ClientError(f"lost the event stream of job {job_id}")


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    event, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield event, json.loads("\n".join(data))
            event, data = "message", []
