"""GET /install.sh and GET /install/<wheel>: the node installer, no authentication.

Neither holds a secret: the script asks for the deploy token from the node's environment.
The server URL written into the script is `ftcontrol serve --public-url` when given
(behind a TLS proxy), else the origin the request came to.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath
from litestar.response import File

from control.install.assets import WHEEL_NAME, AssetError, InstallAssets


def _assets(state: State) -> InstallAssets:
    assets: InstallAssets = state.install_assets
    return assets


def _raise(exc: AssetError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.reason)


@get("/install.sh", include_in_schema=False, sync_to_thread=True)
def install_script(request: Request[Any, Any, Any], state: State) -> Response[str]:
    public_url: str | None = state.get("public_url")
    origin = public_url or f"{request.url.scheme}://{request.url.netloc}"
    try:
        text = _assets(state).render_script(origin.rstrip("/"))
    except AssetError as exc:
        raise _raise(exc) from exc
    return Response(text, media_type="text/x-shellscript; charset=utf-8")


@get("/install/{filename:str}", include_in_schema=False, sync_to_thread=True)
def install_wheel(filename: FromPath[str], state: State) -> File:
    if not WHEEL_NAME.match(filename):
        raise NotFoundException(f"no such file: {filename[:100]}")
    try:
        wheel = _assets(state).wheel()
    except AssetError as exc:
        raise _raise(exc) from exc
    if wheel.name != filename:
        raise NotFoundException(f"this control plane serves {wheel.name}, not {filename[:100]}")
    return File(path=wheel.path, filename=wheel.name, media_type="application/octet-stream")
