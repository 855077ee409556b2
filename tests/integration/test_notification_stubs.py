"""The demo's customer inboxes: the stubs' SMTP server (GET /_mail) and SMS gateway (GET /_sms), over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiohttp
import aiosmtplib
import pytest
from aiohttp import web

from services.stub_externals.app import create_app
from services.stub_externals.mail import MailStore, RunningSmtp


@pytest.fixture
async def stubs() -> AsyncIterator[tuple[str, RunningSmtp]]:
    smtp = RunningSmtp(MailStore(), "127.0.0.1", 0)
    runner = web.AppRunner(create_app(smtp=smtp), access_log=None, handle_signals=False)
    await runner.setup()  # starts the SMTP server with the application
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", smtp
    finally:
        await runner.cleanup()
    assert not smtp.running


async def test_mail_sent_to_the_smtp_server_is_listed(stubs: tuple[str, RunningSmtp]) -> None:
    url, smtp = stubs
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "户名变更已完成"
    message.set_content("尊敬的 李四")

    await aiosmtplib.send(message, hostname=smtp.host, port=smtp.port)

    async with aiohttp.ClientSession() as http, http.get(f"{url}/_mail") as response:
        (mail,) = await response.json()
    assert (mail["envelopeTo"], mail["subject"], mail["body"].strip()) == (
        ["b@example.com"],
        "户名变更已完成",
        "尊敬的 李四",
    )


async def test_sms_gateway_sends_once_per_key_and_obeys_faults(stubs: tuple[str, RunningSmtp]) -> None:
    url, _ = stubs
    sms = {"to": "+8613800138000", "text": "您的户名变更已完成", "reference": "e-1:sms"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/_sms/faults", json={"status": 503, "count": 1}) as response:
            assert response.status == 201
        async with http.post(f"{url}/sms/send", json=sms, headers={"Idempotency-Key": "e-1:sms"}) as response:
            assert response.status == 503
        replies = []
        for _ in range(2):
            async with http.post(f"{url}/sms/send", json=sms, headers={"Idempotency-Key": "e-1:sms"}) as response:
                replies.append((response.status, await response.json()))
        async with http.post(f"{url}/sms/send", json=sms) as response:
            assert response.status == 400  # no Idempotency-Key
        async with http.get(f"{url}/_sms") as response:
            messages = await response.json()
        async with http.post(f"{url}/_reset") as response:
            assert response.status == 204
        async with http.get(f"{url}/_sms") as response:
            assert await response.json() == []

    assert replies[0] == replies[1]
    assert replies[0][0] == 200
    (message,) = messages
    assert (message["to"], message["text"], message["messageId"]) == (
        sms["to"],
        sms["text"],
        replies[0][1]["messageId"],
    )
