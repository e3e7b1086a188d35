"""The HTTP seam: transport failures classified, URLs and secrets scrubbed, downloads checked."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aioresponses import aioresponses

from sync_engine import ExportError, RetriableProviderError
from sync_engine.providers._http import (
    Scrubber,
    download,
    redact_url,
    request,
    retry_after_seconds,
)

URL = "https://api.example.com/en/api/importContacts?format=json&api_key=secret-key-123"
scrub = Scrubber(["secret-key-123"])


def test_redact_url_drops_query_and_credentials() -> None:
    assert (
        redact_url("https://user:pw@h.example.com:8443/p/a?x=1&api_key=k#f")
        == "https://h.example.com:8443/p/a"
    )


def test_retry_after_both_forms() -> None:
    assert retry_after_seconds({"Retry-After": "12"}) == 12.0
    assert (
        retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0)
        == 10.0
    )
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


async def test_503_is_retriable_with_retry_after() -> None:
    async with aiohttp.ClientSession() as session:
        with aioresponses() as mocked:
            mocked.post(URL, status=503, headers={"Retry-After": "3"}, body="busy")
            with pytest.raises(RetriableProviderError) as caught:
                await request(session, "POST", URL, data=b"x", timeout=5, scrub=scrub)
    assert caught.value.retry_after == 3.0
    assert caught.value.code == "http_503"
    assert "secret-key-123" not in str(caught.value)
    assert "api_key" not in str(caught.value)


async def test_connection_error_and_timeout_are_retriable() -> None:
    async with aiohttp.ClientSession() as session:
        with aioresponses() as mocked:
            mocked.post(URL, exception=aiohttp.ClientConnectionError("reset by secret-key-123"))
            mocked.post(URL, exception=TimeoutError())
            with pytest.raises(RetriableProviderError) as first:
                await request(session, "POST", URL, data=b"x", timeout=5, scrub=scrub)
            with pytest.raises(RetriableProviderError, match="no answer within 5 s"):
                await request(session, "POST", URL, data=b"x", timeout=5, scrub=scrub)
    assert "secret-key-123" not in str(first.value)


async def test_200_is_returned_as_is() -> None:
    async with aiohttp.ClientSession() as session:
        with aioresponses() as mocked:
            mocked.post(URL, status=200, body=b'{"result":1}')
            response = await request(session, "POST", URL, data=b"x", timeout=5, scrub=scrub)
    assert response.status == 200
    assert response.body == b'{"result":1}'


async def test_download_detects_truncation_and_expired_links(tmp_path: Path) -> None:
    link = "https://files.example.com/export.csv?X-Amz-Signature=abc"
    async with aiohttp.ClientSession() as session:
        with aioresponses() as mocked:
            mocked.get(
                link, status=200, body=b"email\na@x.com\n", headers={"Content-Length": "100"}
            )
            mocked.get(link, status=403)
            mocked.get(link, status=200, body=b"email\na@x.com\n")
            with pytest.raises(RetriableProviderError, match="truncated at 14 of 100 bytes"):
                await download(session, link, tmp_path / "a.csv", timeout=5, scrub=scrub)
            with pytest.raises(ExportError, match="link is gone") as gone:
                await download(session, link, tmp_path / "b.csv", timeout=5, scrub=scrub)
            size = await download(session, link, tmp_path / "c.csv", timeout=5, scrub=scrub)
    assert "Signature" not in str(gone.value)
    assert size == 14
    assert (tmp_path / "c.csv").read_bytes() == b"email\na@x.com\n"
