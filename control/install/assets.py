"""Where the served installer and wheel live, and the script as one server serves it.

The runtime installer puts the venv at /opt/fasttrace; the package's data files land in
`<venv>/share/fasttrace/` (install.sh, the units) and the installer keeps the wheel it
installed in `<venv>/share/fasttrace/wheels/`. A development checkout has no wheel there:
the wheel route then answers 404 and says how to get one.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

# `name-version-python-abi-platform.whl`, as pip builds it: nothing else is ever served.
WHEEL_NAME = re.compile(r"^fasttrace-[0-9][A-Za-z0-9.+!]*-py3-none-any\.whl$")
# What may be spliced into the script as the server URL (quoted anyway; this keeps it sane).
SERVER_URL = re.compile(
    r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-fA-F:.]+\](:[0-9]{1,5})?$"
)
# The three lines of install.sh that the server fills in.
_PLACEHOLDERS = ("FT_SERVER=''", "FT_WHEEL_URL=''", "FT_WHEEL_SHA256=''")


class AssetError(Exception):
    """The installer cannot be served as asked; `status` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Wheel:
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True, slots=True)
class InstallAssets:
    script: Path
    wheel_dir: Path

    @classmethod
    def for_prefix(cls, prefix: str | Path = sys.prefix) -> InstallAssets:
        share = Path(prefix) / "share" / "fasttrace"
        script = share / "install.sh"
        if not script.is_file():  # a development checkout (editable install)
            script = Path(__file__).resolve().parents[2] / "packaging" / "install.sh"
        return cls(script=script, wheel_dir=share / "wheels")

    def wheel(self) -> Wheel:
        wheels = sorted(self.wheel_dir.glob("fasttrace-*.whl"))
        wheels = [w for w in wheels if WHEEL_NAME.match(w.name)]
        if len(wheels) != 1:
            found = "no agent wheel" if not wheels else f"{len(wheels)} wheels"
            raise AssetError(
                404,
                f"{found} in {self.wheel_dir}: install the control plane with "
                "`make install` (or packaging/install.sh), which keeps the wheel there",
            )
        data = wheels[0].read_bytes()
        return Wheel(path=wheels[0], sha256=hashlib.sha256(data).hexdigest())

    def render_script(self, server_url: str) -> str:
        """install.sh with this server's URL and its wheel's URL and sha256 filled in."""
        if not SERVER_URL.match(server_url):
            raise AssetError(400, f"server URL {server_url[:100]!r} is not a plain http(s) origin")
        wheel = self.wheel()
        text = self.script.read_text()
        values = (server_url, f"{server_url}/install/{wheel.name}", wheel.sha256)
        for line, value in zip(_PLACEHOLDERS, values, strict=True):
            if text.count(f"\n{line}\n") != 1:
                raise AssetError(500, f"{self.script} lacks the line {line}")
            name = line.split("=", 1)[0]
            text = text.replace(f"\n{line}\n", f"\n{name}={shlex.quote(value)}\n", 1)
        return text
