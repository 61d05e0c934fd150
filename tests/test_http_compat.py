"""The signed-HTTP intake on every bittensor major: it imports, and says clearly what it needs.

On every major the ``http`` extra installs and an Epistula intake builds (the default
where ``bt.http_auth`` is missing); on bittensor 9 and 10 asking for ``btauth/1`` is a
clear error naming bittensor 11; without the ``http`` extra the import itself tells
what to install.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from organic_scoring import ANY_HOTKEY
from organic_scoring._compat import HAS_HTTP_AUTH
from organic_scoring.intake import IntakeSettings
from support.loopback import make_wallet
from support.scorers import Recorder

pytestmark = pytest.mark.bittensor


def test_the_module_imports_on_every_major() -> None:
    import organic_scoring.http as http

    assert callable(http.create_app)
    assert callable(http.serve_in_thread)
    assert http.caller_hotkey() is None
    assert http.current_request() is None


class _Prompt(BaseModel):
    text: str


class _Scorer(Recorder):
    async def _on_organic_entry(self, synapse: _Prompt) -> None:
        self._organic_queue.add(synapse)


def test_an_epistula_intake_builds_and_serves_on_every_major(tmp_path: Path) -> None:
    from organic_scoring.http import OrganicClient, create_app
    from organic_scoring.http._signing import default_protocol

    validator, caller = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "caller")
    receiver = validator.hotkey.ss58_address
    scorer = _Scorer()
    app = create_app(
        scorer,
        hotkey_ss58=receiver,
        protocol="epistula",
        allowed_hotkeys=ANY_HOTKEY,
        settings=IntakeSettings(allowed_skew=0),
    )
    assert app.state.organic_intake.protocol.name == "epistula"
    assert default_protocol() == ("btauth/1" if HAS_HTTP_AUTH else "epistula")
    default = create_app(
        _Scorer(), hotkey_ss58=receiver, allowed_hotkeys=[caller.hotkey.ss58_address]
    )
    assert default.state.organic_intake.protocol.name == default_protocol()

    async def main() -> int:
        async with OrganicClient(
            caller,
            "http://intake/organic",
            receiver,
            protocol="epistula",
            transport=httpx.ASGITransport(app=app),
        ) as client:
            return (await client.send(_Prompt(text="hello"))).status_code

    assert asyncio.run(main()) == 204
    assert scorer.organic_queue.size == 1


@pytest.mark.skipif(HAS_HTTP_AUTH, reason="bittensor 11 has bt.http_auth")
def test_without_http_auth_btauth_is_a_clear_error_and_epistula_the_default() -> None:
    from organic_scoring.http import OrganicAuth, create_app
    from organic_scoring.http._signing import default_protocol
    from support.signed_http import Prompt
    from support.transports import parity_scorer

    with pytest.raises(RuntimeError, match=r"bt\.http_auth.*bittensor (9|10).*epistula"):
        create_app(
            parity_scorer(Prompt),
            hotkey_ss58="5F",
            protocol="btauth/1",
            allowed_hotkeys=ANY_HOTKEY,
            settings=IntakeSettings(allowed_skew=0),
        )
    with pytest.raises(RuntimeError, match=r"bt\.http_auth.*epistula"):
        OrganicAuth(object(), "5F", protocol="btauth/1")
    assert default_protocol() == "epistula"


def test_without_the_extra_the_import_says_what_to_install() -> None:
    code = textwrap.dedent(
        """
        import sys

        class NoStarlette:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "starlette":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        import organic_scoring  # bittensor 9/10 need starlette themselves: load them first

        for name in [m for m in sys.modules if m.partition(".")[0] == "starlette"]:
            del sys.modules[name]
        sys.meta_path.insert(0, NoStarlette())
        try:
            import organic_scoring.http
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("imported without starlette")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pip install 'organic-scoring[http]'" in result.stdout
