"""The driver's life around Ray: a loopback Ray of its own, signals that end it cleanly, Ray stopped.

A local search (no ``ray.address``) starts its own Ray on 127.0.0.1 with every port bound to
loopback (search/local_ray.py), in a session of its own, and stops exactly that Ray at the end.

Ctrl-C, SIGTERM and SIGHUP end a search the same way, whether sent to the driver or to its whole
process group: the first one stops Tune gracefully (the running trials are stopped, Tune saves the
experiment and every checkpoint reported so far), the search's MLflow runs are closed as KILLED,
the lock released, Ray stopped, and the command exits 130; the same command resumes it. A second
signal ends the graceful stop at once (KeyboardInterrupt), with the same cleanup.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from search.local_ray import LOOPBACK, start_local_ray

LOCAL_LOOPBACK = LOOPBACK
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def node_ip(address: str | None, given: str | None) -> str | None:
    """The address this node registers with: the given one, or 127.0.0.1 for a local search."""
    if given:
        try:
            return str(ipaddress.ip_address(given))
        except ValueError:
            raise ValueError(f"ray.node_ip must be an IP address such as {LOCAL_LOOPBACK}, got {given!r}") from None
    return None if address else LOCAL_LOOPBACK


class Interrupts:
    """``with Interrupts() as interrupts:`` the first Ctrl-C/SIGTERM/SIGHUP stops the search cleanly.

    Tune's own Ctrl-C handler is turned off (``TUNE_DISABLE_SIGINT_HANDLER``) so that every signal is
    seen here; while Tune runs (:meth:`fitting`) the first one is handed to Tune's graceful stop
    (its SIGUSR1 handler), elsewhere it raises KeyboardInterrupt. ``received`` names the signal.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._fitting = False
        self._saved: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""

    def install(self) -> None:
        """(Re)install the handlers: ``ray.init`` puts in its own SIGTERM handler, which exits at once."""
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        for sig in SIGNALS:
            try:
                previous = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                return
            self._saved.setdefault(sig, previous)

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.received is None
        self.received = self.received or signum
        stop_tune = signal.getsignal(signal.SIGUSR1)
        if first and self._fitting and callable(stop_tune):
            stop_tune(signal.SIGUSR1, frame)  # Tune: leave the loop, save the experiment, stop the trials
            signal.signal(signal.SIGINT, self._handle)  # Tune's handler put back the SIGINT handler it found
            return
        raise KeyboardInterrupt

    @contextmanager
    def fitting(self) -> Iterator[None]:
        """Around ``tuner.fit()``: a signal stops Tune gracefully; none starts after one came."""
        if self.received:
            raise KeyboardInterrupt
        with contextlib.suppress(ValueError):  # a finished Tune run's handler would swallow the signal
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        self._fitting = True
        try:
            yield
        finally:
            self._fitting = False

    def __enter__(self) -> Interrupts:
        self.install()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved = {}


@contextmanager
def ray_started(address: str | None, given_ip: str | None, interrupts: Interrupts | None = None) -> Iterator[None]:
    """Join the cluster at ``address`` (or RAY_ADDRESS), or start a local Ray on loopback, for the block.

    Whatever ends the block short of SIGKILL, the driver leaves Ray and the local Ray is stopped."""
    import ray

    if ray.is_initialized():  # a caller's Ray (tests): theirs to stop
        yield
        return
    args: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    ip = node_ip(address, given_ip)
    local = None
    if address or os.environ.get("RAY_ADDRESS"):
        args["address"] = address  # None: ray.init reads RAY_ADDRESS
    else:
        # A Ray of our own, never a cluster some other program left running on this machine. Token auth
        # unless RAY_AUTH_MODE says otherwise, as ray.init gives a Ray it starts (the token in ~/.ray/auth_token):
        # a driver joining a head reads an unset mode as "disabled", so it is set for both here.
        from ray._private.authentication import authentication_token_setup as auth

        if "RAY_AUTH_MODE" not in os.environ:
            auth.enable_token_auth_by_default()
        auth.ensure_token_if_auth_enabled(None, create_token_if_missing=True)  # ray start --head makes none
        if ip != LOCAL_LOOPBACK:
            print(f"ray.node_ip={ip}: Ray binds its ports to loopback only on {LOCAL_LOOPBACK}; on {ip} its gRPC ports listen on every interface")
        local = start_local_ray(ip or LOCAL_LOOPBACK)
        args["address"] = local.address
        if ip == LOCAL_LOOPBACK:
            # keep 127.0.0.1 as this driver's address too (Ray would take the outward one): see local_ray.py
            import ray._private.ray_constants as ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False
    if ip:
        args["_node_ip_address"] = ip
    try:
        ray.init(**args)
        if interrupts is not None:
            interrupts.install()
        yield
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if local is not None:
            local.stop()
