"""Run the emulator: an HTTPS listener for the authority (msal insists on https) and an HTTP
listener for the managed-identity endpoints (plain http on Azure too), in one event loop.

`EmulatorServer` binds loopback only unless told otherwise, writes ``emulator.json`` in its data
folder (authority, managed-identity URL, tenant, CA bundle) for ``tenantops emulator env`` and
other processes, and runs in the foreground or in a background thread (tests, ``serve --dev``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import certifi
import uvicorn

from tenantops.emulator.app import build_app
from tenantops.emulator.assertions import ReplayPolicy
from tenantops.emulator.directory import Directory
from tenantops.emulator.state import EmulatorState
from tenantops.emulator.token_cache import NO_CACHE, TokenCachePolicy
from tenantops.errors import EmulatorError
from tenantops.listen import listen
from tenantops.pki import LocalCA

__all__ = ["EmulatorInfo", "EmulatorServer", "is_loopback", "read_info"]

log = logging.getLogger("tenantops.emulator")

INFO_FILE = "emulator.json"


@dataclass(frozen=True)
class EmulatorInfo:
    """How to reach a running emulator."""

    authority: str
    mi_url: str
    tenant_id: str
    ca_bundle: str
    data_dir: str
    pid: int


def read_info(data_dir: Path) -> EmulatorInfo | None:
    path = data_dir / INFO_FILE
    if not path.is_file():
        return None
    return EmulatorInfo(**json.loads(path.read_text(encoding="utf-8")))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class EmulatorServer:
    """The emulator's two listeners. Construction binds nothing; `start` or `serve` does.

    ``token_cache`` decides which managed-identity endpoints serve a cached token (none unless
    given: tests and embedded uses get a fresh token per request; ``tenantops emulator`` passes
    the ``emulator.mi_token_cache_*`` settings, App Service for 24 h by default).
    ``assertion_replay`` is what a repeated client-assertion ``jti`` gets (`ReplayPolicy`).
    """

    def __init__(
        self,
        directory: Directory,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mi_port: int = 0,
        allow_remote: bool = False,
        key_grace_seconds: float = 86400.0,
        token_cache: TokenCachePolicy = NO_CACHE,
        assertion_replay: ReplayPolicy = "allow",
    ) -> None:
        if not is_loopback(host) and not allow_remote:
            raise EmulatorError(
                f"refusing to bind the emulator to {host}: it issues tokens to anyone who asks. "
                "Use a loopback address, or pass --allow-remote if you really mean it."
            )
        self.host = host
        self.port = port
        self.mi_port = mi_port
        self.data_dir = data_dir
        self.state = EmulatorState(directory, data_dir / "emulator",
                                   key_grace_seconds=key_grace_seconds, token_cache=token_cache,
                                   assertion_replay=assertion_replay)
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._info: EmulatorInfo | None = None

    @property
    def info(self) -> EmulatorInfo:
        if self._info is None:
            raise EmulatorError("the emulator is not running")
        return self._info

    def _prepare(self) -> tuple[list[socket.socket], list[uvicorn.Config]]:
        tls_dir = self.data_dir / "emulator" / "tls"
        ca = LocalCA(tls_dir, name="tenantops emulator CA")
        names = ["127.0.0.1", "localhost", "::1"]
        if self.host not in names:
            names.append(self.host)
        leaf = ca.issue(names, tls_dir, "authority")
        bundle = tls_dir / "ca-bundle.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca.ca_pem())

        https_sock = listen(self.host, self.port, setting="--port or emulator.port")
        http_sock = listen(self.host, self.mi_port,
                           setting="--mi-port or emulator.mi_port")
        https_port = https_sock.getsockname()[1]
        http_port = http_sock.getsockname()[1]
        self.state.authority_url = f"https://{_url_host(self.host)}:{https_port}"
        self.state.mi_url = f"http://{_url_host(self.host)}:{http_port}"
        self.state.keys.active()  # create or load keys before the first request
        for issuer in self.state.directory.issuers:
            if issuer.hosted:  # so that 'emulator env' in another process finds them made
                self.state.issuers.jwks(issuer)
        app = build_app(self.state)
        common = {"log_level": "warning", "access_log": False, "lifespan": "off",
                  "timeout_keep_alive": 30, "server_header": False}
        https_cfg = uvicorn.Config(app, ssl_certfile=str(leaf.cert_path),
                                   ssl_keyfile=str(leaf.key_path), **common)  # type: ignore[arg-type]
        http_cfg = uvicorn.Config(app, **common)  # type: ignore[arg-type]
        self._info = EmulatorInfo(
            authority=self.state.authority_url, mi_url=self.state.mi_url,
            tenant_id=self.state.directory.tenant_id, ca_bundle=str(bundle),
            data_dir=str(self.data_dir), pid=os.getpid())
        info_path = self.data_dir / INFO_FILE
        info_path.write_text(json.dumps(asdict(self._info), indent=2), encoding="utf-8")
        return [https_sock, http_sock], [https_cfg, http_cfg]

    async def _run(self, sockets: list[socket.socket], configs: list[uvicorn.Config],
                   started: threading.Event | None,
                   on_ready: Callable[[], None] | None = None) -> None:
        self._servers = [uvicorn.Server(cfg) for cfg in configs]
        tasks = [asyncio.create_task(srv.serve(sockets=[sock]))
                 for srv, sock in zip(self._servers, sockets, strict=False)]
        while not all(s.started for s in self._servers):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        if started is not None:
            started.set()
        if on_ready is not None:
            on_ready()
        await asyncio.gather(*tasks)

    def start(self) -> EmulatorInfo:
        """Serve in a background thread; return once both listeners accept connections."""
        sockets, configs = self._prepare()
        started = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run(sockets, configs, started)),
            name="tenantops-emulator", daemon=True)
        self._thread.start()
        if not started.wait(30) or not all(s.started for s in self._servers):
            raise EmulatorError("the emulator did not start within 30 s")
        return self.info

    def serve(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in the foreground until Ctrl-C; call ``on_ready`` once listening."""
        sockets, configs = self._prepare()
        asyncio.run(self._run(sockets, configs, None, on_ready))

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> EmulatorInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
