"""The HTTP seam shared by providers: one request, classified transport failures, downloads.

Everything that leaves this module is scrubbed: URLs lose their query strings (pre-signed
download links and some APIs carry credentials there) and known secrets are masked.
"""

from __future__ import annotations

import email.utils
import io
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import anyio

from sync_engine.errors import ExportError, FatalProviderError, RetriableProviderError

# Bodies above this many bytes (Altcraft's batches reach 10 MB) are streamed.
_STREAM_ABOVE = 1 << 20

__all__ = ["HttpResponse", "Scrubber", "download", "redact_url", "request", "retry_after_seconds"]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class Scrubber:
    """Masks known secret values in any text before it reaches a message or a log."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if len(s) >= 4)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def redact_url(url: str) -> str:
    """The URL without query, fragment or user info: safe to print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds, in either of its two forms; None when absent or bad."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,  # noqa: ASYNC109 - handed to aiohttp's ClientTimeout per call
    scrub: Scrubber,
) -> HttpResponse:
    """One HTTP exchange. Transport failures and 5xx/429 become RetriableProviderError."""
    where = redact_url(url)
    # aiohttp writes a large bytes body in one go (and warns); a stream is sent in chunks.
    payload: bytes | io.BytesIO | None = data
    if data is not None and len(data) > _STREAM_ABOVE:
        payload = io.BytesIO(data)
    try:
        async with session.request(
            method,
            url,
            data=payload,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            body = await response.read()
            result = HttpResponse(response.status, dict(response.headers), body)
    except TimeoutError:
        raise RetriableProviderError(f"{where}: no answer within {timeout:g} s") from None
    except aiohttp.ClientError as error:
        raise RetriableProviderError(
            f"{where}: {type(error).__name__}: {scrub(str(error))}"
        ) from None
    if result.status == 429 or result.status >= 500:
        raise RetriableProviderError(
            f"{where}: HTTP {result.status}",
            code=f"http_{result.status}",
            retry_after=retry_after_seconds(result.headers),
        )
    return result


async def download(
    session: aiohttp.ClientSession,
    url: str,
    destination: Path,
    *,
    timeout: float,  # noqa: ASYNC109 - a stall limit between chunks, not a deadline
    scrub: Scrubber,
    on_bytes: Callable[[int], None] | None = None,
    headers: Mapping[str, str] | None = None,
    on_chunk: Callable[[bytes], None] | None = None,
) -> int:
    """Stream ``url`` to ``destination`` chunk by chunk; returns the byte count.

    A body shorter than its Content-Length is a truncated download: retriable, and never
    handed on, because diffing against part of the remote side would plan false inserts
    and removals. ``headers`` are for APIs whose files need the credential (Altcraft);
    ``on_chunk`` sees every chunk as it passes (to count rows on the way).
    """
    where = redact_url(url)
    written = 0
    try:
        async with session.get(
            url,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout),
            allow_redirects=headers is None,  # never carry a credential to another host
        ) as response:
            if response.status == 429 or response.status >= 500:
                raise RetriableProviderError(
                    f"{where}: HTTP {response.status} while downloading the export",
                    retry_after=retry_after_seconds(response.headers),
                )
            if response.status in (403, 404, 410):
                # Pre-signed links expire; a fresh export gives a fresh link.
                raise ExportError(
                    f"{where}: HTTP {response.status}: the export link is gone",
                    code="link_expired",
                )
            if response.status != 200:
                raise FatalProviderError(f"{where}: HTTP {response.status} while downloading")
            expected = response.content_length
            async with await anyio.open_file(destination, "wb") as sink:
                async for chunk in response.content.iter_chunked(1 << 18):
                    await sink.write(chunk)
                    written += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                    if on_chunk is not None:
                        on_chunk(chunk)
    except TimeoutError:
        raise RetriableProviderError(f"{where}: download stalled for {timeout:g} s") from None
    except aiohttp.ClientError as error:
        raise RetriableProviderError(
            f"{where}: download failed: {type(error).__name__}: {scrub(str(error))}"
        ) from None
    if expected is not None and written != expected:
        raise RetriableProviderError(
            f"{where}: download truncated at {written} of {expected} bytes",
            code="download_truncated",
        )
    return written
