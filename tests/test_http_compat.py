"""The signed-HTTP intake on every bittensor major: it imports, and says clearly what it needs.

On bittensor 9 and 10 (no ``bt.http_auth``) asking for btauth/1 is a clear error
(Epistula is the default there); without the ``http`` extra the import itself tells
what to install.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from organic_scoring._compat import HAS_HTTP_AUTH


def test_the_module_imports_on_every_major() -> None:
    import organic_scoring.http as http

    assert callable(http.create_app)
    assert callable(http.serve_in_thread)
    assert http.caller_hotkey() is None
    assert http.current_caller() is None


@pytest.mark.skipif(HAS_HTTP_AUTH, reason="bittensor 11 has bt.http_auth")
def test_without_http_auth_btauth_is_a_clear_error_and_epistula_the_default() -> None:
    from organic_scoring.http import OrganicAuth, create_app, default_protocol
    from support.signed_http import Prompt
    from support.transports import parity_scorer

    with pytest.raises(RuntimeError, match=r"bt\.http_auth.*bittensor (9|10).*epistula"):
        create_app(parity_scorer(Prompt), hotkey_ss58="5F", protocol="btauth/1")
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
