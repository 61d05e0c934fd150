"""``redact``: no user's words in what the library keeps or logs, hooks still get them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from organic_scoring import OrganicScoringBase, Redacted
from organic_scoring._log import log
from organic_scoring.errors import IterationError
from support.axons import BITTENSOR_WARNINGS
from support.signed_http import Wallets, wallets  # noqa: F401 (fixture)
from support.transports import TRANSPORTS, intake

SECRET = "my card number is 4111 1111 1111 1111"


class Catch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def library_log() -> Iterator[Catch]:
    """Everything the library logs, at every level, formatted with tracebacks."""
    logger = logging.getLogger("test_redact.library")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    catch = Catch()
    logger.addHandler(catch)
    previous = log._target
    log._target = logger
    try:
        yield catch
    finally:
        log._target = previous
        logger.removeHandler(catch)


class Leaky(OrganicScoringBase):
    """Fails its queries with the prompt in the message, as real code often does."""

    def __init__(self, **kwargs: Any) -> None:
        self.errors: list[tuple[Any, str]] = []
        super().__init__(**kwargs)

    async def _on_organic_entry(self, synapse: Any) -> Any:
        self._organic_queue.add(synapse)

    async def _query_miners(self, sample: Any) -> Any:
        raise KeyError(sample["prompt"])

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        return {}

    async def _set_weights(self, rewards: Any) -> None:
        return None


class Reporting(Leaky):
    async def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException) -> None:
        self.errors.append((sample, stage))


def _fail_once(scorer: OrganicScoringBase) -> IterationError:
    scorer._organic_queue.add({"prompt": SECRET, "id": 7})
    with pytest.raises(IterationError) as failed:
        asyncio.run(scorer.loop_iteration())
    return failed.value


def test_redact_true_keeps_no_sample_and_logs_no_message() -> None:
    scorer = Leaky(redact=True)
    with library_log() as caught:
        error = _fail_once(scorer)
    (kept,) = scorer.recent_failures
    assert kept.sample == Redacted("dict")
    assert repr(kept.sample) == "<redacted dict>"
    assert kept.stage == "query"
    assert kept.organic is True
    assert error.sample == Redacted("dict")
    text = "\n".join(caught.lines)
    assert "failed in the query stage: KeyError (message withheld: redact is on)" in text
    assert "_query_miners" in text  # where it came from is still there
    assert "4111" not in text


def test_hooks_still_get_the_real_sample() -> None:
    scorer = Reporting(redact=True)
    _fail_once(scorer)
    assert scorer.errors == [({"prompt": SECRET, "id": 7}, "query")]
    assert scorer.recent_failures[0].sample == Redacted("dict")


def test_a_function_chooses_what_is_kept_and_a_failing_one_keeps_nothing() -> None:
    scorer = Reporting(redact=lambda sample: {"id": sample["id"]})
    error = _fail_once(scorer)
    assert scorer.recent_failures[0].sample == {"id": 7}
    assert error.sample == {"id": 7}

    broken = Reporting(redact=lambda sample: sample["missing"])
    with library_log() as caught:
        error = _fail_once(broken)
    assert broken.recent_failures[0].sample == Redacted("dict")
    assert error.sample == Redacted("dict")
    assert any("redact raised KeyError" in line for line in caught.lines)
    assert "4111" not in "\n".join(caught.lines)


def test_without_redact_samples_and_messages_are_kept() -> None:
    scorer = Leaky()
    with library_log() as caught:
        error = _fail_once(scorer)
    assert scorer.recent_failures[0].sample == {"prompt": SECRET, "id": 7}
    assert error.sample == {"prompt": SECRET, "id": 7}
    assert SECRET in "\n".join(caught.lines)


def test_a_failing_error_hook_is_logged_without_its_message_under_redact() -> None:
    class BadReporter(Leaky):
        async def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException) -> None:
            raise ValueError(f"could not store {sample['prompt']}")

    scorer = BadReporter(redact=True)
    with library_log() as caught:
        _fail_once(scorer)
    text = "\n".join(caught.lines)
    assert "_on_iteration_error raised while reporting a query failure: ValueError" in text
    assert "4111" not in text


def test_the_default_log_results_never_logs_the_sample() -> None:
    class Quiet(Leaky):
        async def _query_miners(self, sample: Any) -> Any:
            return {0: f"echo {sample['prompt']}"}

        async def _generate_reference(self, sample: Any) -> Any:
            return sample["prompt"]

        async def _generate_rewards(
            self, sample: Any, responses: Any, reference: Any = None
        ) -> Any:
            return {0: 1.0}

    scorer = Quiet()
    scorer._organic_queue.add({"prompt": SECRET})
    with library_log() as caught:
        logs = asyncio.run(scorer.loop_iteration())
    assert logs["is_organic_sample"] is True
    text = "\n".join(caught.lines)
    assert "iteration 1 (organic)" in text
    assert "4111" not in text


@pytest.mark.parametrize("bad", [1, "yes", None, ["x"]])
def test_redact_must_be_a_bool_or_a_function(bad: Any) -> None:
    with pytest.raises(ValueError, match="redact"):
        Leaky(redact=bad)


@BITTENSOR_WARNINGS
@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("redact", [False, True])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_intakes_log_a_failing_handler_without_its_message_under_redact(
    transport: str,
    redact: bool,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with intake(transport, wallets, monkeypatch, redact=redact) as driver:
        driver.scorer.failing.add("crash")
        with library_log() as caught:
            assert asyncio.run(driver.send(wallets.client, "crash")) == 500
            driver.answers_after(1)
    text = "\n".join(caught.lines)
    assert "_on_organic_entry raised for" in text
    # The handler's exception says "secret internals": kept only without redact.
    assert ("secret internals" in text) is not redact
    if redact:
        assert "RuntimeError (message withheld: redact is on)" in text


# -- Pseudonymizer: realistic, consistent stand-ins (issue 24) -----------------------------

PERSONAL = {
    "messages": [
        {"role": "user", "content": "Mail alice@example.org, or call +44 20 7946 0958."},
        {"role": "assistant", "content": "I will write to Alice@Example.org."},
        {"role": "user", "content": "My card is 4111 1111 1111 1111; the box is 203.0.113.7"},
    ],
    "user": "alice@example.org",
    "api_key": "sk-AbCdEf1234567890GhIjKlMn",
    "temperature": 0.3,
    "max_tokens": 256,
    "stop": ["\n\n"],
    "created": "2024-01-15",
}


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()][::-1]
    total = sum(
        d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits)
    )
    return total % 10 == 0


def test_pseudonyms_replace_every_personal_value_in_every_field() -> None:
    from organic_scoring.synth_dataset import Pseudonymizer

    redacted = Pseudonymizer(b"key one")(PERSONAL)
    flat = repr(redacted)
    for value in ("alice@", "Alice@", "7946 0958", "4111 1111", "203.0.113.7", "AbCdEf12"):
        assert value not in flat
    assert "[" + "email]" not in flat
    assert "<" not in flat
    # The shape and every other value are kept.
    assert set(redacted) == set(PERSONAL)
    assert [m["role"] for m in redacted["messages"]] == ["user", "assistant", "user"]
    assert redacted["temperature"] == 0.3
    assert redacted["max_tokens"] == 256
    assert redacted["stop"] == ["\n\n"]
    assert redacted["created"] == "2024-01-15"  # a date is not a phone number
    assert PERSONAL["user"] == "alice@example.org"  # the original is untouched


def test_pseudonyms_reach_dict_keys_and_sets() -> None:
    from organic_scoring.synth_dataset import Pseudonymizer

    sample = {
        "prompt": "summarise the thread",
        "metadata": {"alice@example.org": {"seen": 3}, "cc": {"bob@example.org"}},
    }
    redacted = Pseudonymizer(b"key one")(sample)
    assert "@example.org" not in repr(redacted)
    assert len(redacted["metadata"]) == 2
    (address,) = redacted["metadata"]["cc"]
    assert isinstance(redacted["metadata"]["cc"], set)
    assert address.count("@") == 1


@pytest.mark.parametrize(
    "address", ["józef.nowak@poczta.pl", "maría@correo.es", "иван@почта.рф", "jörg@müller.de"]
)
def test_an_address_with_accented_letters_is_replaced_whole(address: str) -> None:
    import re

    from organic_scoring.synth_dataset import Pseudonymizer

    redacted = Pseudonymizer(b"key one").text(f"escribe a {address} hoy")
    stand_in = re.fullmatch(r"escribe a (\S+) hoy", redacted)
    assert stand_in is not None
    assert re.fullmatch(r"[a-z0-9._]+@[a-z0-9.-]+\.[a-z]{2,}", stand_in.group(1))


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("my key is AKIAIOSFODNN7EXAMPLE, keep it", "IOSFODNN7EXAMPLE"),  # 20 characters
        ("reset: https://example.com/reset?token=ab12cd34ef56&lang=en", "ab12cd34ef56"),
        ("the wifi password: hunter2 works", "hunter2"),
        ('config: password="Tr0ub4dor&3"', "Tr0ub4dor"),
    ],
)
def test_short_keys_and_stated_secrets_are_replaced(text: str, secret: str) -> None:
    from organic_scoring.synth_dataset import Pseudonymizer

    redacted = Pseudonymizer(b"key one").text(text)
    assert secret not in redacted
    assert len(redacted) == len(text)  # same layout
    # Words that only name a secret are left alone.
    assert Pseudonymizer(b"key one").text("the token: is invalid") == "the token: is invalid"


@pytest.mark.parametrize("run", ["a", "7", "ab."])
def test_a_long_prompt_is_redacted_in_linear_time(run: str) -> None:
    # redact runs on the scorer's event loop for every organic request: a long run of
    # letters or digits (a pasted blob) must not stall it (it took 5 s at 50 000
    # characters, 80 s at 200 000, growing with the square of the length).
    import time

    from organic_scoring.synth_dataset import Pseudonymizer

    text = run * (50_000 // len(run))
    started = time.perf_counter()
    assert Pseudonymizer(b"key one").text(text) == text
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("value", "form"),
    [
        ("9fceb02d0ae598e95dc970b74767f19372d61af8", r"[0-9a-f]{40}"),  # a commit
        (
            "3f2b8c1e-9a4d-4e6f-b1c2-7d8e9f0a1b2c",
            r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-b[0-9a-f]{3}-[0-9a-f]{12}",
        ),
        ("0x52908400098527886e0f7030069857d2e4169ee7", r"0x[0-9a-f]{40}"),  # an address
        ("sk-proj-abcdEFGH1234ijklMNOP5678qrst", r"sk-proj-[A-Za-z0-9]{28}"),
    ],
)
def test_a_token_stand_in_is_written_as_the_token_was(value: str, form: str) -> None:
    # A stand-in outside the value's alphabet (a commit hash with a "q" in it, a
    # UUID of no version, "1x..." for an address) is a token no user pasted.
    import re

    from organic_scoring.synth_dataset import Pseudonymizer

    stand_in = Pseudonymizer(b"key one").text(value)
    assert stand_in != value
    assert re.fullmatch(form, stand_in), stand_in


def test_a_bittensor_address_stand_in_has_a_valid_checksum() -> None:
    import hashlib

    from organic_scoring.synth_dataset import Pseudonymizer

    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

    def checks_out(address: str) -> bool:
        number = 0
        for c in address:
            number = number * 58 + alphabet.index(c)
        raw = number.to_bytes(35, "big")
        return hashlib.blake2b(b"SS58PRE" + raw[:33], digest_size=64).digest()[:2] == raw[33:]

    address = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    assert checks_out(address)
    stand_in = Pseudonymizer(b"key one").text(f"my coldkey is {address}.").split()[-1][:-1]
    assert stand_in != address
    assert stand_in.startswith("5")
    assert checks_out(stand_in)


@pytest.mark.parametrize(
    "number", ["(415) 555-0199", "+1 212 555 0147", "07700 900123", "+44 20 7946 0958"]
)
def test_a_phone_stand_in_keeps_the_first_digit_of_each_group(number: str) -> None:
    # Random digits gave area codes and exchanges starting with 0 or 1 and national
    # numbers without their trunk 0: numbers no plan has, which a miner can check.
    import re

    from organic_scoring.synth_dataset import Pseudonymizer

    stand_in = Pseudonymizer(b"key one").text(number)
    assert stand_in != number
    assert len(stand_in) == len(number)
    first = re.compile(r"(?<!\d)\d")
    assert [m.group() for m in first.finditer(stand_in)] == [
        m.group() for m in first.finditer(number)
    ]


@pytest.mark.parametrize(
    ("value", "form"),
    [
        ("172.17.0.2", r"172\.(1[6-9]|2\d|3[01])\.\d+\.\d+"),  # a container's
        ("192.168.1.20", r"192\.168\.\d+\.\d+"),
        ("8.8.4.4", r"(?!10\.|127\.|172\.|192\.|169\.|100\.)\d+\.\d+\.\d+\.\d+"),
        ("5555 4444 3333 1111", r"5555 \d{4} \d{4} \d{4}"),  # Mastercard
        ("3782 822463 10005", r"3782 \d{6} \d{5}"),  # American Express
    ],
)
def test_a_stand_in_stays_in_the_range_of_its_value(value: str, form: str) -> None:
    # A private address became a public one, and a card kept only its first digit
    # (3 followed by anything is no issuer's range): values a miner can check.
    import re

    from organic_scoring.synth_dataset import Pseudonymizer

    stand_in = Pseudonymizer(b"key one").text(value)
    assert stand_in != value
    assert re.fullmatch(form, stand_in), stand_in


def test_private_addresses_stay_private() -> None:
    import re

    from organic_scoring.synth_dataset import Pseudonymizer

    pseudonymize = Pseudonymizer(b"key one").text
    for n in range(1, 30):
        stand_in = pseudonymize(f"172.17.0.{n}")
        assert re.fullmatch(r"172\.(1[6-9]|2\d|3[01])\.\d+\.\d+", stand_in), stand_in


@pytest.mark.parametrize(
    ("url", "password", "kept"),
    [
        ("postgres://admin:S3cret@db.internal:5432/app", "S3cret", "@db.internal:5432/app"),
        ("redis://:hunter22@localhost:6379/0", "hunter22", "@localhost:6379/0"),
        (
            "mongodb+srv://bob:pa55w0rd!@cluster0.mongodb.net/x",
            "pa55w0rd",
            "@cluster0.mongodb.net/x",
        ),
    ],
)
def test_the_password_in_a_url_is_replaced_and_the_host_kept(
    url: str, password: str, kept: str
) -> None:
    from organic_scoring.synth_dataset import Pseudonymizer

    redacted = Pseudonymizer(b"key one").text(f"my DATABASE_URL is {url} ok")
    assert password not in redacted
    assert redacted.endswith(f"{kept} ok")
    assert len(redacted) == len(f"my DATABASE_URL is {url} ok")


@pytest.mark.parametrize(
    "text",
    [
        "mi contraseña: hunter22 gracias",
        "mein Passwort = hunter22 danke",
        "мой пароль: hunter22 спасибо",
        "mon mot de passe : hunter22 merci",
        "我的密码\uff1ahunter22\uff0c谢谢",
        "パスワード: hunter22 です",
    ],
)
def test_a_password_given_in_another_language_is_replaced(text: str) -> None:
    from organic_scoring.synth_dataset import Pseudonymizer

    redacted = Pseudonymizer(b"key one").text(text)
    assert "hunter22" not in redacted
    assert len(redacted) == len(text)


def test_pseudonyms_are_realistic_and_keep_the_layout() -> None:
    import re

    from organic_scoring.synth_dataset import Pseudonymizer

    redacted = Pseudonymizer(b"key one")(PERSONAL)
    first = redacted["messages"][0]["content"]
    email = re.search(r"(\S+@\S+),", first)
    assert email is not None
    assert re.fullmatch(r"[a-z0-9._]+@[a-z0-9.-]+\.[a-z]{2,}", email.group(1))
    assert re.search(r"call \+44 \d\d \d{4} \d{4}\.$", first)
    card = re.search(r"card is ([\d ]+);", redacted["messages"][2]["content"])
    assert card is not None
    assert re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}", card.group(1))
    assert _luhn(card.group(1))
    assert card.group(1).startswith("4")
    assert redacted["api_key"].startswith("sk-")
    assert len(redacted["api_key"]) == len(PERSONAL["api_key"])


def test_pseudonyms_are_consistent_under_one_key_and_differ_under_another() -> None:
    from organic_scoring.synth_dataset import Pseudonymizer

    one = Pseudonymizer(b"key one")
    first, again = one(PERSONAL), one({"to": "ALICE@example.org"})
    email = first["user"]
    assert email in first["messages"][0]["content"]
    assert email in first["messages"][1]["content"]  # case does not make another person
    assert again["to"] == email
    assert Pseudonymizer("key one")(PERSONAL) == first
    assert Pseudonymizer(b"key two")(PERSONAL)["user"] != email
    assert "hidden" in repr(one)
    with pytest.raises(ValueError, match="key must be bytes"):
        Pseudonymizer(3)  # type: ignore[arg-type]


def test_a_replay_dataset_pseudonymizes_on_offer_and_on_load(tmp_path: Any) -> None:
    from organic_scoring.synth_dataset import OrganicReplayDataset, Pseudonymizer

    raw = OrganicReplayDataset(10)
    raw.offer({"prompt": "write to alice@example.org today"})
    raw.save(tmp_path / "old.json")  # saved before redaction

    key = b"replay key"
    loaded = OrganicReplayDataset(10, redact=Pseudonymizer(key))
    loaded.load(tmp_path / "old.json")
    offered = OrganicReplayDataset(10, redact=Pseudonymizer(key))
    offered.offer({"prompt": "write to alice@example.org today"})
    assert loaded.stored() == offered.stored()
    assert "alice" not in repr(loaded.stored())
