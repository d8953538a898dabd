"""The server's notification outbox, as a typed dependency (a channel test sends through it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tagwarden.notify.worker import OutboxWorker


async def current_outbox(request: Request) -> OutboxWorker:
    outbox: OutboxWorker = request.app.state.outbox
    return outbox


Outbox = Annotated[OutboxWorker, Depends(current_outbox)]
