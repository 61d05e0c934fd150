"""Personal data replaced by consistent, realistic stand-ins: a ``redact`` for replay."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import secrets
import string
from collections.abc import Callable
from typing import Any

from organic_scoring.synth_dataset._text import Path, map_strings

__all__ = ["Pseudonymizer"]

_FIRST = (
    "anna", "ben", "carla", "david", "elena", "felix", "grace", "hugo", "ines", "jonas",
    "kate", "liam", "maria", "noah", "olga", "paul", "rosa", "sam", "tara", "victor",
    "yuki", "amir", "chen", "fatima", "lucas", "mei", "omar", "priya", "sofia", "tom",
)  # fmt: skip
_LAST = (
    "keller", "novak", "garcia", "smith", "rossi", "meyer", "kowalski", "silva", "tanaka",
    "nguyen", "brown", "larsen", "dubois", "fischer", "moreau", "patel", "walsh", "ivanova",
    "costa", "berg", "khan", "lopez", "schmidt", "wright", "santos", "hall", "young", "ward",
)  # fmt: skip
_DOMAINS = (
    "gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "hotmail.com",
    "gmx.de", "web.de", "mail.ru", "yandex.ru", "qq.com", "orange.fr", "libero.it",
)  # fmt: skip

_LETTER = "A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"  # Latin, Greek, Cyrillic
_EMAIL = re.compile(  # starts where a run of its letters starts: linear, not quadratic
    rf"(?<![{_LETTER}0-9._%+-])[{_LETTER}0-9._%+-]+@[{_LETTER}0-9-]+(?:\.[{_LETTER}0-9-]+)*\.[{_LETTER}]{{2,}}"
)
_IPV4 = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"
)
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,5}(?!\w)")
_PREFIXES = r"sk-proj|sk-ant-api\d\d|sk|pk|rk|ghp|gho|ghs|github_pat|xox[abpr]|AKIA|ASIA|hf|glpat"
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{24,}"
    rf"|(?:{_PREFIXES})[-_]?(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{{12,}}"  # an AWS key id is 20
    r")(?![A-Za-z0-9_-])"
)
# The password in a URL ("postgres://admin:S3cret@db:5432/app"): read as an e-mail
# address, it left the host replaced and punctuated passwords in place.
_USERINFO = re.compile(r"(?i:(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://)[^\s:/@]*:[^\s/@]+@")
# A value given as a password, token or key ("password: hunter2", "?token=ab12cd"):
# six characters or more, not all small letters (so "token: is" stays as it is).
_SECRET_NAMES = (
    "password|passwd|pwd|passphrase|token|api[_-]?key|secret|access[_-]?key"
    # the same in the languages users write in
    "|passwort|kennwort|contrase\u00f1a|contrasena|clave|mot de passe|senha|parola|has\u0142o"
    "|wachtwoord|l\u00f6senord|\u043f\u0430\u0440\u043e\u043b\u044c"
)
_SECRET_NAMES_UNSPACED = (  # no word boundary before them in text without spaces
    "\u5bc6\u7801|\u5bc6\u78bc|\u30d1\u30b9\u30ef\u30fc\u30c9|\ube44\ubc00\ubc88\ud638"
)
_SECRET = re.compile(
    rf"(?i:(?:(?<!\w)(?:{_SECRET_NAMES})|{_SECRET_NAMES_UNSPACED})"
    r"\s*[:=\uff1a]\s*[\"']?)(?![a-z]+(?![^\s&#\"',;]))[^\s&#\"',;\u3001\u3002\uff0c]{6,}"
)
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_ANY = re.compile(
    "|".join(
        f"(?P<{name}>{pattern.pattern})"
        for name, pattern in (
            ("userinfo", _USERINFO),
            ("secret", _SECRET),
            ("email", _EMAIL),
            ("token", _TOKEN),
            ("ip", _IPV4),
            ("card", _CARD),
            ("phone", _PHONE),
        )
    )
)
_TOKEN_PREFIX = re.compile(rf"^(?:{_PREFIXES})[-_]?")


class Pseudonymizer:
    """A ``redact`` that replaces personal data by consistent, realistic pseudonyms.

    In every string of a sample (dict keys and set members too) it replaces e-mail and
    IPv4 addresses, card and phone numbers, secret-like tokens and values given as a
    password, token or key by stand-ins of the same kind and layout, the same value by
    the same one under the same ``key`` (the docs' Probes page has the details). Names
    and street addresses are not recognised.

    Args:
        key: The secret the pseudonyms are derived from (bytes or str). None draws
            a random one, consistent for this object's life; pass a stored key for
            pseudonyms that stay the same across restarts.

    Use it as ``OrganicReplayDataset(redact=Pseudonymizer(key))``; calling it returns
    a redacted copy.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes | str | None = None) -> None:
        if key is None:
            key = secrets.token_bytes(32)
        elif isinstance(key, str):
            key = key.encode("utf-8")
        elif not isinstance(key, bytes):
            raise ValueError(f"key must be bytes, str or None, got {type(key).__name__}")
        self._key = key

    def __call__(self, sample: Any) -> Any:
        return map_strings(sample, self._string, every=True)

    def __repr__(self) -> str:
        return "Pseudonymizer(key=<hidden>)"

    def text(self, text: str) -> str:
        """``text`` with every personal value in it replaced."""
        return _ANY.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        # The group names of _ANY are the names of the methods that replace them.
        replace: Callable[[str], str] = getattr(self, f"_{match.lastgroup}")
        return replace(match.group())

    def _string(self, path: Path, value: str) -> str:
        return self.text(value)

    def _random(self, kind: str, value: str) -> random.Random:
        seed = hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()
        return random.Random(seed)

    def _email(self, value: str) -> str:
        rng = self._random("email", value.casefold())
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        local = rng.choice(
            (f"{first}.{last}", f"{first}{last}", f"{first}_{last}", f"{first[0]}{last}")
        )
        if rng.random() < 0.4:
            local += str(rng.randrange(1, 100))
        return f"{local}@{rng.choice(_DOMAINS)}"

    def _ip(self, value: str) -> str:
        rng = self._random("ip", value)
        first, second = value.split(".")[:2]
        # A private or special range stays one (a stand-in for 172.17.0.2 that is a
        # public address is no container's); a public address stays public.
        head: list[str]
        if first in ("10", "127"):
            head = [first]
        elif (first, second) in (("192", "168"), ("169", "254")):
            head = [first, second]
        elif first == "172" and 16 <= int(second) <= 31:
            head = [first, str(rng.randrange(16, 32))]
        elif first == "100" and 64 <= int(second) <= 127:
            head = [first, str(rng.randrange(64, 128))]
        else:
            head = [str(rng.choice(_PUBLIC_FIRST))]
        rest = [str(rng.randrange(1, 255)) for _ in range(4 - len(head))]
        return ".".join([*head, *rest])

    def _card(self, value: str) -> str:
        rng = self._random("card", value)
        digits = [c for c in value if c.isdigit()]
        body = [str(rng.randrange(10)) for _ in digits[:-1]]
        body[:4] = digits[:4]  # the issuer's range (Visa 4, Amex 34/37, Mastercard 2221-2720)
        total = 0
        for index, digit in enumerate(reversed(body)):
            number = int(digit) * (2 if index % 2 == 0 else 1)
            total += number - 9 if number > 9 else number
        new = iter([*body, str((10 - total % 10) % 10)])
        return "".join(next(new) if c.isdigit() else c for c in value)

    def _phone(self, value: str) -> str:
        if (
            sum(c.isdigit() for c in value) < 7
            or _DATE.fullmatch(value)
            or not (value.startswith("+") or any(c in " .-()" for c in value))
        ):
            return value  # a date, a plain number: not a phone number
        rng = self._random("phone", value)
        keep = 0
        if value.startswith("+"):  # the country code stays
            keep = len(re.match(r"\+\(?\d{1,3}", value).group())  # type: ignore[union-attr]
        # The first digit of each group stays: numbering plans rule on it (a North
        # American area code or exchange never starts with 0 or 1, a trunk prefix is 0,
        # a mobile range has its own), and a miner can check a number's plan.
        changed, previous = [], ""
        for c in value[keep:]:
            changed.append(str(rng.randrange(10)) if c.isdigit() and previous.isdigit() else c)
            previous = c
        return value[:keep] + "".join(changed)

    def _userinfo(self, value: str) -> str:
        colon = value.index(":", value.index("://") + 3)
        return value[: colon + 1] + self._swapped("secret", value[colon + 1 : -1]) + "@"

    def _secret(self, value: str) -> str:
        named = re.match(r"[^:=\uff1a]*[:=\uff1a]\s*[\"']?", value)
        keep = named.end() if named else 0
        return value[:keep] + self._swapped("secret", value[keep:])

    def _token(self, value: str) -> str:
        prefix = _TOKEN_PREFIX.match(value)
        keep = prefix.end() if prefix else 0
        return value[:keep] + self._swapped("token", value[keep:])

    def _swapped(self, kind: str, value: str) -> str:
        """``value`` with each letter and digit replaced by a random one of its kind,
        from the alphabet the value is written in (hexadecimal, base58, or any); an
        SS58 address (a Bittensor key) becomes another with a valid checksum."""
        rng = self._random(kind, value)
        address = _ss58(value, rng)
        if address is not None:
            return address
        kept: set[int] = set()  # positions that say what the value is
        if value[:2] in ("0x", "0X"):
            kept = {0, 1}  # a hexadecimal number, an Ethereum address
        elif _UUID.fullmatch(value):
            kept = {14, 19}  # a UUID's version and variant
        chars = {c for i, c in enumerate(value) if i not in kept} - set("-_")
        digits, upper, lower = string.digits, string.ascii_uppercase, string.ascii_lowercase
        if chars <= _HEX:
            upper, lower = "ABCDEF", "abcdef"
        elif chars <= _BASE58:
            digits, upper, lower = "123456789", _BASE58_UPPER, _BASE58_LOWER

        def swap(c: str) -> str:
            if c.isdigit():
                return rng.choice(digits)
            if c.isupper():
                return rng.choice(upper)
            if c.islower():
                return rng.choice(lower)
            return c

        return "".join(c if i in kept else swap(c) for i, c in enumerate(value))


_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
)
_PUBLIC_FIRST = tuple(n for n in range(11, 224) if n not in (100, 127, 169, 172, 192))
_HEX = frozenset(string.hexdigits)
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58 = frozenset(_BASE58_ALPHABET)
_BASE58_UPPER = "".join(c for c in _BASE58_ALPHABET if c.isupper())
_BASE58_LOWER = "".join(c for c in _BASE58_ALPHABET if c.islower())


def _ss58_checksum(data: bytes) -> bytes:
    return hashlib.blake2b(b"SS58PRE" + data, digest_size=64).digest()[:2]


def _ss58(value: str, rng: random.Random) -> str | None:
    """Another SS58 address of the same network for ``value`` if it is one (a valid
    checksum), else None: a miner can check the checksum of what it reads."""
    if not 46 <= len(value) <= 48 or not set(value) <= _BASE58:
        return None
    number = 0
    for c in value:
        number = number * 58 + _BASE58_ALPHABET.index(c)
    raw = number.to_bytes(35, "big") if number < 1 << 280 else b""
    if len(raw) != 35 or raw[0] >= 64 or _ss58_checksum(raw[:33]) != raw[33:]:
        return None
    data = raw[:1] + rng.randbytes(32)
    number = int.from_bytes(data + _ss58_checksum(data), "big")
    encoded = ""
    while number:
        number, digit = divmod(number, 58)
        encoded = _BASE58_ALPHABET[digit] + encoded
    return encoded
