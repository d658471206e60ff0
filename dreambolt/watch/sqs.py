"""The SQS queue `dreambolt watch --queue URL` reads S3 event notifications from.

The client is made like the S3 one (`S3Options`: profile, region; the AWS credential chain).
The queue URL says where it lives: `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` is AWS in
that region; any other host (ElasticMQ, LocalStack, moto) is used as the endpoint itself. Calls
that fail transiently (throttling, 5xx, a dropped connection) are retried with DreamBolt's one
backoff policy (`dreambolt.backoff`); botocore's own retries are off.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig

from dreambolt.backoff import Backoff
from dreambolt.errors import DreamBoltError, redact
from dreambolt.s3.options import S3Options
from dreambolt.s3.session import new_session

__all__ = ["Message", "Queue", "QueueError"]

log = logging.getLogger("dreambolt.watch")
T = TypeVar("T")
_THROTTLED = {"Throttling", "ThrottlingException", "RequestThrottled", "ServiceUnavailable"}


class QueueError(DreamBoltError):
    """The queue cannot be used: it does not exist, the credentials may not use it, or SQS
    kept failing. The service stops (exit 3)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One received message."""

    id: str
    receipt: str
    body: str
    receive_count: int  # how often SQS has handed it out, this time included


def _describe(exc: BaseException) -> str:
    """An error's code and message, without request details, redacted."""
    error = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    text = f"{error.get('Code', '')} {error.get('Message', '')}".strip() if error else str(exc)
    return redact(text or type(exc).__name__)


def _transient(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return int(status) >= 500 or response.get("Error", {}).get("Code") in _THROTTLED
    return isinstance(exc, OSError | TimeoutError) or "ConnectionError" in type(exc).__name__


class Queue:
    """An SQS queue: receive, delete, give back, extend, dead-letter."""

    def __init__(self, url: str, options: S3Options, *, wait_seconds: int = 20) -> None:
        self.url = url
        self.options = options
        self.wait_seconds = wait_seconds
        self.dead_letter_url: str | None = None
        self.visibility_timeout = 30
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._backoff = Backoff(options.max_retries, options.backoff_factor, options.max_backoff)

    async def __aenter__(self) -> Queue:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        region, endpoint = self.options.region, None
        if host.endswith(".amazonaws.com") and host.startswith("sqs."):
            region = host.split(".")[1]
        else:
            endpoint = f"{parts.scheme}://{parts.netloc}"
        session = new_session(self.options.profile)
        config = AioConfig(
            retries={"total_max_attempts": 1},
            connect_timeout=self.options.connect_timeout,
            read_timeout=max(self.options.read_timeout, self.wait_seconds + 10),
        )
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "sqs",
                region_name=region or session.get_config_variable("region") or "us-east-1",
                endpoint_url=endpoint,
                config=config,
            )
        )
        await self._read_attributes()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            async for attempt in self._backoff.retrying(retry=_transient):
                with attempt:
                    return await fn()
        except Exception as exc:  # botocore's and aiohttp's, after the retries
            raise QueueError(
                f"cannot use the SQS queue {self.url}: {_describe(exc)}; check --queue, the "
                "region and that the credentials may use it (sqs:ReceiveMessage, "
                "sqs:DeleteMessage, sqs:ChangeMessageVisibility, sqs:GetQueueAttributes)"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read_attributes(self) -> None:
        answer = await self._call(
            lambda: self._client.get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
            )
        )
        attributes = answer.get("Attributes", {})
        self.visibility_timeout = int(attributes.get("VisibilityTimeout", 30))
        policy = attributes.get("RedrivePolicy")
        if not policy:
            log.warning(
                "queue %s has no redrive policy: a message that can never be parsed is logged "
                "and deleted; give it a dead-letter queue to keep such messages",
                self.url,
            )
            return
        arn = str(json.loads(policy).get("deadLetterTargetArn", ""))
        _, _, _, _, account, name = (arn.split(":") + [""] * 6)[:6]
        found = await self._call(
            lambda: self._client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
        )
        self.dead_letter_url = str(found["QueueUrl"])

    async def receive(self, most: int = 10) -> list[Message]:
        """Up to `most` messages (waits up to `wait_seconds` for the first)."""
        answer = await self._call(
            lambda: self._client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=most,
                WaitTimeSeconds=self.wait_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        )
        return [
            Message(
                m["MessageId"],
                m["ReceiptHandle"],
                m.get("Body", ""),
                int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for m in answer.get("Messages", [])
        ]

    async def waiting(self) -> int:
        """About how many messages wait to be received (SQS's approximate count)."""
        answer = await self._call(
            lambda: self._client.get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
            )
        )
        return int(answer.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))

    async def delete(self, message: Message) -> None:
        await self._call(
            lambda: self._client.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt)
        )

    async def extend(self, message: Message, seconds: int) -> None:
        """Keep `message` hidden `seconds` more (while its files load)."""
        await self._call(
            lambda: self._client.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=message.receipt, VisibilityTimeout=seconds
            )
        )

    async def give_back(self, message: Message, delay: int = 0) -> None:
        """Let SQS hand `message` out again after `delay` seconds."""
        await self.extend(message, max(0, min(delay, 43_200)))

    async def dead_letter(self, message: Message) -> bool:
        """Move a message that can never be parsed to the dead-letter queue (False if there is
        none: it is then deleted; the caller has logged it)."""
        if self.dead_letter_url is not None:
            target = self.dead_letter_url
            await self._call(
                lambda: self._client.send_message(QueueUrl=target, MessageBody=message.body)
            )
        await self.delete(message)
        return self.dead_letter_url is not None
