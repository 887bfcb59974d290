"""Hooks for the policy tests' gateway (``test_policy``), next to postly's feed: a write hook
that transforms or refuses comments, and read hooks that reshape them."""

from __future__ import annotations

from typing import Any

SUFFIX = " [via gateway]"


async def comment_written(ctx: Any, body: dict[str, Any]) -> dict[str, Any]:
    text = str(body.get("text", ""))
    if "spam" in text.lower():
        raise ctx.error(400, "No spam.", {"text": {"code": "validation_spam", "message": "No spam."}})
    if text:
        body["text"] = text.strip() + SUFFIX
    return body


async def comment_viewed(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    data["reshaped"] = ctx.operation
    return data


async def comments_listed(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    data["hooked"] = len(data.get("items", []))
    return data


before_write = {"comments:*": comment_written}
after_read = {"comments:view": comment_viewed, "comments:list": comments_listed}
