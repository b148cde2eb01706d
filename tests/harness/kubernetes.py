"""A fake Kubernetes API server for the EKS pin source: HTTPS on 127.0.0.1 with a test CA, the
list endpoints the source reads (pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs,
CronJobs, all namespaces), paged with `limit` and `continue` as the API server pages them.

    with KubernetesApi() as api:
        api.add("pods", pod("web-1", images=[uri], image_ids=[f"{repo}@{digest}"]))
        eks_cluster(aws, "prod", api)   # moto's EKS DescribeCluster now points at it

Faults a cluster may have: `status=403` (no access entry), `delay` seconds before every answer or
until the server stops (a cluster slower than the source's timeout), `fail_page` (the n-th page
answers 500), `body` (every answer is these bytes as they are, with `status` and `headers`: a
proxy's HTML page, text cut short, bytes that are not UTF-8, a redirect, a 503 with `Retry-After`).
Every request is recorded (`requests`: path as sent, query, the Authorization header), so tests can
check the token. A path the API server does not serve is answered 404, as the API server answers it;
`//api/v1/pods` is not `/api/v1/pods` (the standard library's handler reduces leading slashes to
one: the path is read from the request line instead). An `Accept` header that allows no JSON is
answered 406, as the API server answers a media type it cannot serve (media types ignore case).

The CA and the server's certificate (for IP 127.0.0.1) are made once per process with the
`cryptography` package, an ECDSA P-256 key each.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# kind (as the tests name it) -> API path
PATHS = {
    "pods": "/api/v1/pods",
    "deployments": "/apis/apps/v1/deployments",
    "statefulsets": "/apis/apps/v1/statefulsets",
    "daemonsets": "/apis/apps/v1/daemonsets",
    "replicasets": "/apis/apps/v1/replicasets",
    "jobs": "/apis/batch/v1/jobs",
    "cronjobs": "/apis/batch/v1/cronjobs",
}
# The fixed day the test certificates are valid around (not the wall clock): from 400 days before
# it to ten years after, which covers any day the suite runs (TLS checks validity by the real
# clock, or freezegun's under `make test-tomorrow`).
VALID_FROM = (2026, 1, 1)


@dataclass(frozen=True)
class TestCa:
    ca_pem: bytes
    cert_file: str
    key_file: str


@cache
def test_ca() -> TestCa:
    """A CA and a server certificate for 127.0.0.1 signed by it (files for ssl's loader)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecr-sweeper test CA")])
    # Made at call time: under freezegun, `datetime.datetime` is its class, which cryptography
    # then expects.
    valid_from = datetime.datetime(*VALID_FROM, tzinfo=datetime.UTC)
    start = valid_from - datetime.timedelta(days=400)
    end = valid_from + datetime.timedelta(days=3650)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory = Path(tempfile.mkdtemp(prefix="ecr-sweeper-k8s-"))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TestCa(ca.public_bytes(serialization.Encoding.PEM), str(cert_file), str(key_file))


@dataclass
class Request:
    path: str
    query: dict[str, str]
    authorization: str


@dataclass
class KubernetesApi:
    """One cluster's API server. `page` caps every page (the source asks for more)."""

    page: int = 2
    status: int = 200
    delay: float = 0.0
    fail_page: int | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)  # sent with `body`
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    # Set when the server stops: a delayed answer waits for `delay` or for this, whichever comes
    # first, so a delay far beyond a client's timeout holds the answer back for certain, without
    # holding the test up.
    _stopped: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "enter the KubernetesApi first"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ca_pem(self) -> bytes:
        return test_ca().ca_pem

    def add(self, kind: str, *items: dict[str, Any]) -> None:
        self.objects.setdefault(PATHS[kind], []).extend(items)

    def __enter__(self) -> KubernetesApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the standard library's name
                api._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca = test_ca()
        context.load_cert_chain(ca.cert_file, ca.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        # The request line's target, as the client sent it (`handler.path` has its leading
        # slashes reduced to one).
        path, _, raw_query = handler.requestline.split(" ")[1].partition("?")
        query = {k: v[0] for k, v in parse_qs(raw_query).items()}
        self.requests.append(Request(path, query, handler.headers.get("Authorization", "")))
        if self.delay:
            self._stopped.wait(self.delay)
        if self.body is not None:
            self._send_bytes(handler, self.status, self.body, "text/html", self.headers)
            return
        if self.status != 200:
            self._send(handler, self.status, {"kind": "Status", "code": self.status})
            return
        if not _accepts_json(handler.headers.get("Accept")):
            self._send(handler, 406, {"kind": "Status", "reason": "NotAcceptable", "code": 406})
            return
        if path not in PATHS.values():
            self._send(handler, 404, {"kind": "Status", "reason": "NotFound", "code": 404})
            return
        if self.fail_page is not None and len(self.requests) == self.fail_page:
            self._send(handler, 500, {"kind": "Status", "code": 500})
            return
        items = self.objects.get(path, [])
        start = int(query.get("continue") or 0)
        size = min(int(query.get("limit") or len(items) or 1), self.page)
        page = items[start : start + size]
        following = start + len(page)
        metadata = {"continue": str(following)} if following < len(items) else {}
        self._send(handler, 200, {"kind": "List", "metadata": metadata, "items": page})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        KubernetesApi._send_bytes(handler, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send_bytes(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client gave up (a timeout test): nothing to answer


def _accepts_json(accept: str | None) -> bool:
    """Whether an `Accept` header (none: anything) allows `application/json`."""
    if accept is None:
        return True
    ranges = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(ranges & {"application/json", "application/*", "*/*"})


# --- objects ---------------------------------------------------------------------------------


def _containers(images: Sequence[str]) -> list[dict[str, str]]:
    return [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]


def pod(
    name: str,
    images: Sequence[str],
    image_ids: Sequence[str] = (),
    *,
    namespace: str = "default",
    init: Sequence[str] = (),
) -> dict[str, Any]:
    """A running pod; `image_ids` are its containers' `status.containerStatuses[].imageID`."""
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": _containers(images), "initContainers": _containers(init)},
        "status": {
            "containerStatuses": [
                {"name": f"c{i}", "imageID": image_id} for i, image_id in enumerate(image_ids)
            ]
        },
    }


def workload(name: str, images: Sequence[str], *, namespace: str = "default") -> dict[str, Any]:
    """A Deployment, StatefulSet, DaemonSet, ReplicaSet or Job: the pod template's images."""
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"containers": _containers(images)}}},
    }


def cronjob(name: str, images: Sequence[str], *, namespace: str = "default") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": _containers(images)}}}}
        },
    }
