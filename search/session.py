"""The driver's life around Ray: a loopback address by default, signals that end it cleanly, Ray stopped.

A local search (no ``ray.address``) keeps Ray on a loopback address so nothing listens on the
machine's network: ``127.0.0.2`` by default, since Ray registers ``127.0.0.1`` as the machine's
outward address (``ray.node_ip=127.0.0.1`` is therefore moved to ``127.0.0.2``, with a line saying so).
SIGTERM and SIGHUP reach the search as Ctrl-C does: Tune stops the trials, saves the experiment,
and the same command resumes it. Whatever ends the driver short of SIGKILL, the Ray it started is stopped.
"""

from __future__ import annotations

import ipaddress
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray

LOCAL_LOOPBACK = "127.0.0.2"


def node_ip(address: str | None, given: str | None, say: Any = print) -> str | None:
    """The address this node registers with: the given one, or loopback for a local search."""
    if given:
        try:
            ip = ipaddress.ip_address(given)
        except ValueError:
            raise ValueError(f"ray.node_ip must be an IP address such as {LOCAL_LOOPBACK}, got {given!r}") from None
        if str(ip) == "127.0.0.1":
            say(f"ray.node_ip=127.0.0.1: Ray would register this node on the machine's outward address instead, so it uses the loopback {LOCAL_LOOPBACK}")
            return LOCAL_LOOPBACK
        return str(ip)
    return None if address else LOCAL_LOOPBACK


def _interrupt(signum: int, frame: Any) -> None:
    """Hand SIGTERM/SIGHUP to whatever handles Ctrl-C now (Tune's graceful stop, or KeyboardInterrupt)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


@contextmanager
def interrupts_as_ctrl_c() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP end the search like Ctrl-C (only in the main thread)."""
    saved = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            saved[sig] = signal.signal(sig, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextmanager
def ray_stopped_after(started: bool) -> Iterator[None]:
    """Stop (or, on a cluster, disconnect from) the Ray this driver started, however the block ends."""
    try:
        yield
    finally:
        if started and ray.is_initialized():
            ray.shutdown()
