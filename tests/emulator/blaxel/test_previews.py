"""Previews: a loopback URL that really proxies to the sandbox port, stable, 404 once gone."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from blaxel.core import SandboxInstance
from blaxel.core.client.errors import ConflictError, UnexpectedStatus

from emulator.blaxel import BlaxelBackend
from infra.providers.sandbox import normalise_url

pytestmark = pytest.mark.anyio

# A tiny app on $PORT that echoes method, path, body and a header, and answers 201.
ECHO_SERVER = r"""
import http.server, json, os
class H(http.server.BaseHTTPRequestHandler):
    def _reply(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        out = json.dumps({"method": self.command, "path": self.path, "body": body,
                          "x": self.headers.get("x-test"),
                          "prefix": self.headers.get("x-forwarded-prefix")}).encode()
        self.send_response(201)
        self.send_header("x-upstream", "yes")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = _reply
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


async def _serving_sandbox(name: str) -> SandboxInstance:
    sandbox = await SandboxInstance.create({"name": name, "ports": [{"target": 8000}]})
    await sandbox.fs.write("/app/server.py", ECHO_SERVER)
    await sandbox.process.exec(
        {"name": "web", "command": "python server.py", "working_dir": "/app"}
    )
    return sandbox


async def _get_when_up(http: httpx.AsyncClient, url: str) -> httpx.Response:
    for _ in range(400):  # the server process needs a moment to bind its port
        response = await http.get(url)
        if response.status_code != 502:
            return response
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never came up")


async def test_public_preview_proxies_method_body_headers_and_status(
    backend: BlaxelBackend,
) -> None:
    sandbox = await _serving_sandbox("web-1")

    preview = await sandbox.previews.create(
        {"metadata": {"name": "api"}, "spec": {"port": 8000, "public": True}}
    )
    async with httpx.AsyncClient() as http:
        await _get_when_up(http, normalise_url(preview.url))
        response = await http.post(
            normalise_url(preview.url) + "/hook?x=1", content=b"payload", headers={"x-test": "t"}
        )

    assert preview.url == backend.preview_url("web-1", "api")
    assert response.status_code == 201
    assert response.headers["x-upstream"] == "yes"
    assert response.json() == {
        "method": "POST",
        "path": "/hook?x=1",
        "body": "payload",
        "x": "t",
        "prefix": "/blaxel/previews/web-1/api",
    }


async def test_two_sandboxes_serving_the_same_port_do_not_collide(backend: BlaxelBackend) -> None:
    first, second = await _serving_sandbox("web-a"), await _serving_sandbox("web-b")
    spec = {"metadata": {"name": "p"}, "spec": {"port": 8000, "public": True}}

    url_a = normalise_url((await first.previews.create(spec)).url)
    url_b = normalise_url((await second.previews.create(spec)).url)
    async with httpx.AsyncClient() as http:
        await _get_when_up(http, url_a)
        await _get_when_up(http, url_b)

    ports = {backend.get_sandbox(n).ports[8000] for n in ("web-a", "web-b")}
    assert url_a != url_b
    assert len(ports) == 2


async def test_preview_get_list_and_duplicate(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "pv", "ports": [{"target": 3000}]})
    spec = {"metadata": {"name": "p"}, "spec": {"port": 3000, "public": True}}

    created = await sandbox.previews.create(spec)
    fetched = await sandbox.previews.get("p")
    listed = await sandbox.previews.list()
    with pytest.raises(ConflictError) as caught:
        await sandbox.previews.create(spec)

    assert fetched.url == created.url
    assert [p.name for p in listed] == ["p"]
    assert caught.value.status_code == 409


async def test_deleted_preview_url_answers_404_and_comes_back_the_same(
    backend: BlaxelBackend,
) -> None:
    sandbox = await _serving_sandbox("web-d")
    spec = {"metadata": {"name": "p"}, "spec": {"port": 8000, "public": True}}
    url = (await sandbox.previews.create(spec)).url

    await sandbox.previews.delete("p")
    async with httpx.AsyncClient() as http:
        gone = await http.get(normalise_url(url))
        recreated = (await sandbox.previews.create(spec)).url
        back = await _get_when_up(http, normalise_url(recreated))

    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "ROUTE_NOT_FOUND"
    assert recreated == url
    assert back.status_code == 201


async def test_deleting_the_sandbox_makes_its_preview_404(backend: BlaxelBackend) -> None:
    sandbox = await _serving_sandbox("web-x")
    url = (
        await sandbox.previews.create(
            {"metadata": {"name": "p"}, "spec": {"port": 8000, "public": True}}
        )
    ).url
    url = normalise_url(url)
    async with httpx.AsyncClient() as http:
        await _get_when_up(http, url)
        await SandboxInstance.delete("web-x")
        response = await http.get(url)

    assert response.status_code == 404


async def test_private_preview_needs_credentials(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "priv", "ports": [{"target": 8000}]})
    preview = await sandbox.previews.create(
        {"metadata": {"name": "p"}, "spec": {"port": 8000, "public": False}}
    )

    async with httpx.AsyncClient() as http:
        response = await http.get(normalise_url(preview.url))

    assert response.status_code == 401


async def test_unknown_preview_is_404_through_the_sdk(backend: BlaxelBackend) -> None:
    sandbox = await SandboxInstance.create({"name": "pv"})

    with pytest.raises(UnexpectedStatus) as caught:
        await sandbox.previews.get("nope")

    assert caught.value.status_code == 404


async def test_preview_url_comes_without_a_scheme_like_the_platform(backend: BlaxelBackend) -> None:
    """docs.blaxel.ai/Sandboxes/Preview-url shows hosts; DESIGN §3: `spec.url` may lack a scheme."""
    sandbox = await SandboxInstance.create({"name": "noscheme"})
    preview = await sandbox.previews.create(
        {"metadata": {"name": "p"}, "spec": {"port": 3000, "public": True}}
    )

    assert "://" not in preview.url
    assert normalise_url(preview.url).startswith("http://127.0.0.1:")


@pytest.mark.parametrize("port", [80, 443, 8080])
async def test_a_preview_on_a_reserved_port_is_refused(backend: BlaxelBackend, port: int) -> None:
    """docs.blaxel.ai/Sandboxes/Ports: 80, 443 and 8080 are reserved by Blaxel's system."""
    sandbox = await SandboxInstance.create({"name": f"rsv-{port}"})

    with pytest.raises(UnexpectedStatus) as caught:
        await sandbox.previews.create(
            {"metadata": {"name": "p"}, "spec": {"port": port, "public": True}}
        )

    assert caught.value.status_code == 400
    assert b"INVALID_PORTS" in caught.value.content
    assert f"port {port} is reserved".encode() in caught.value.content


async def test_previews_can_come_protocol_relative_and_still_serve(
    backend: BlaxelBackend,
) -> None:
    """The `//host/...` form seen on the real platform (row B2): a switch of the emulator, so
    product code meets it; a preview keeps the form it was created with."""
    sandbox = await _serving_sandbox("web-rel")
    before = await sandbox.previews.create(
        {"metadata": {"name": "plain"}, "spec": {"port": 8000, "public": True}}
    )
    backend.set_preview_url_form("protocol_relative")

    preview = await sandbox.previews.create(
        {"metadata": {"name": "rel"}, "spec": {"port": 8000, "public": True}}
    )
    read_back = await sandbox.previews.get("rel")
    async with httpx.AsyncClient() as http:
        response = await _get_when_up(http, normalise_url(preview.url) + "/x")

    assert preview.url.startswith("//127.0.0.1:")
    assert read_back.url == preview.url
    assert not before.url.startswith("//")
    assert (await sandbox.previews.get("plain")).url == before.url
    assert response.status_code == 201
    assert response.json()["path"] == "/x"


async def test_an_unknown_preview_url_form_is_refused_naming_the_setting(
    backend: BlaxelBackend,
) -> None:
    from emulator.config import EmulatorConfig

    with pytest.raises(ValueError, match="preview_url_form must be one of"):
        backend.set_preview_url_form("ftp")
    with pytest.raises(ValueError, match="preview_url_form must be one of"):
        EmulatorConfig(
            public_base_url="http://127.0.0.1:1", data_dir=backend.root, preview_url_form="x"
        )
    assert backend.preview_url_form == "scheme_less"
