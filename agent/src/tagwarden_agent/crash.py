"""A test aid: ``TAGWARDEN_AGENT_CRASH_AT=<step>`` makes the agent SIGKILL itself at that step
of a switch, so the end-to-end tests can prove that a restart converges from each one.

Read once, here and nowhere else; unset (always, on a device) it does nothing. The steps, in
the order a switch passes them: ``pulling`` (mid-pull, after the engine's first progress
event), ``stopped`` (the old container stopped and renamed, the new not created), ``started``
(the new container running, not judged yet), ``healthy`` (judged healthy, the state file not
written yet).
"""

from __future__ import annotations

import os
import signal

STEPS = ("pulling", "stopped", "started", "healthy")
_CRASH_AT = os.environ.get("TAGWARDEN_AGENT_CRASH_AT") or None


def crash_point(step: str) -> None:
    if step == _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: what a power cut leaves
