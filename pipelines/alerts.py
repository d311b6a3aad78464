"""Run-failure reporting: every failed step is logged and, when configured, posted to a webhook."""

import json
import logging
import urllib.request
from typing import Any

from dagster import HookContext, failure_hook

log = logging.getLogger("lakescore.alerts")


def post_webhook(url: str, payload: dict[str, Any], *, timeout_s: float) -> bool:
    """POST ``payload`` as JSON; never raises (an alert must not mask the original failure)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except OSError as exc:
        log.warning("alert webhook %s failed: %s", url, exc)
        return False


@failure_hook(required_resource_keys={"lakescore"})
def notify_failure(context: HookContext) -> None:
    settings = context.resources.lakescore.settings()
    error = context.op_exception
    payload = {
        "event": "lakescore.step_failed",
        "job": context.job_name,
        "run_id": context.run_id,
        "step": context.step_key,
        "error_type": type(error).__name__ if error else None,
        "error": str(error)[:2000] if error else None,
    }
    context.log.error(f"step {context.step_key} failed: {payload['error']}")
    if settings.alerts.webhook_url:
        post_webhook(settings.alerts.webhook_url, payload, timeout_s=settings.alerts.timeout_s)
