"""WeightSetter against a simulated chain behind each bittensor major's own classes.

The chain (support.weights_chain) keeps blocks, last updates, the rate limit, the
weights version, weight limits and commit-reveal, and answers as subtensor does; the
installed SDK's ``Subtensor``/``AsyncSubtensor`` (9/10) or ``Client``/``SyncClient``
(11) stand in front of it, their every simulated method bound to the real signature.
Each test runs on whichever major is installed; most run with a sync and an async
client.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bittensor as bt
import numpy as np
import pytest
from pydantic import ValidationError

from organic_scoring import _compat
from organic_scoring.wallet import throwaway_wallet
from organic_scoring.weights import (
    ScoreBook,
    WeightSetter,
    WeightsResult,
    emit_weights,
)
from organic_scoring.weights._chain import judge
from organic_scoring.weights._result import OUTCOMES
from support.waiting import WAIT, until, wait_until
from support.weights_chain import (
    CHAIN_ERRORS,
    U16_MAX,
    SimChain,
    calls_of,
    close_sync_client,
    sim_for,
)

# Every SDK shape differs by bittensor major: this runs on each.
pytestmark = pytest.mark.bittensor

MAJOR = _compat.BT_MAJOR
GAP_EXTRA = 1 if MAJOR == 10 else 0
"""10's set_weights sends only once more blocks than the rate limit have passed."""

legacy_only = pytest.mark.skipif(MAJOR >= 11, reason="bittensor 9/10 path")
sdk_only = pytest.mark.skipif(MAJOR < 11, reason="bittensor 11 path")


@pytest.fixture(scope="module")
def wallet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return throwaway_wallet(tmp_path_factory.mktemp("wallets"), "validator")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return throwaway_wallet(tmp_path_factory.mktemp("strangers"), "stranger")


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def asynchronous(request: pytest.FixtureRequest) -> bool:
    flag: bool = request.param
    return flag


@pytest.fixture
def handles() -> Iterator[Callable[..., Any]]:
    """Makes the SDK object over a chain; closes bittensor 11's sync clients after."""
    made: list[Any] = []

    def make(chain: SimChain, *, asynchronous: bool = False) -> Any:
        handle = sim_for(chain, asynchronous=asynchronous)
        made.append(handle)
        return handle

    yield make
    for handle in made:
        if MAJOR >= 11 and isinstance(handle, bt.SyncClient):
            close_sync_client(handle)


@pytest.fixture
def chain(wallet: Any) -> SimChain:
    """A subnet of 8 uids where the validator is uid 5; rate limit 10, version 7."""
    sim = SimChain(n=8, rate_limit=10, weights_version=7)
    sim.register("someone-else")
    for uid in range(1, 5):
        sim.register(f"miner-{uid}", uid)
    sim.register(wallet.hotkey.ss58_address, 5)
    return sim


@pytest.fixture
def setter_for(
    wallet: Any, handles: Callable[..., Any], asynchronous: bool
) -> Iterator[Callable[..., WeightSetter]]:
    made: list[WeightSetter] = []

    def make(chain: SimChain, **options: Any) -> WeightSetter:
        setter = WeightSetter(
            chain.netuid, wallet, handles(chain, asynchronous=asynchronous), **options
        )
        made.append(setter)
        return setter

    yield make
    for setter in made:
        setter.close()


def stored(chain: SimChain, uid: int = 5, mechid: int = 0) -> dict[int, int]:
    """The weights the chain holds for ``uid``, as u16 values."""
    return chain.weights[(mechid, uid)]


def shares(values: dict[int, int]) -> dict[int, float]:
    total = sum(values.values())
    return {uid: value / total for uid, value in values.items()}


# -- construction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("netuid", -1),
        ("netuid", True),
        ("mechid", -1),
        ("version_key", -3),
        ("in_last_blocks", 0),
        ("burn", (1, 1.5)),
        ("burn", (-1, 0.5)),
        ("burn", (True, 0.5)),
        ("burn", 0.5),
        ("block_time", 0),
        ("block_time", math.nan),
        ("retry_blocks", 0),
        ("wait_for_inclusion", "yes"),
    ],
)
def test_settings_are_checked_when_built(
    option: str, value: Any, wallet: Any, chain: SimChain, handles: Callable[..., Any]
) -> None:
    options: dict[str, Any] = {"netuid": 1, option: value}
    with pytest.raises(ValidationError, match=option):
        WeightSetter(wallet=wallet, subtensor=handles(chain), **options)


def test_a_wallet_is_required(chain: SimChain, handles: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="wallet is required"):
        WeightSetter(1, None, handles(chain))


@legacy_only
def test_legacy_majors_need_a_subtensor(wallet: Any) -> None:
    with pytest.raises(ValueError, match="subtensor is required"):
        WeightSetter(1, wallet)
    with pytest.raises(ValueError, match="network= picks bittensor 11"):
        WeightSetter(1, wallet, network="finney")
    with pytest.raises(TypeError, match=r"bt\.Subtensor or bt\.AsyncSubtensor"):
        WeightSetter(1, wallet, object())


@sdk_only
def test_bittensor_11_takes_a_client_or_a_network(
    wallet: Any, chain: SimChain, handles: Callable[..., Any]
) -> None:
    with pytest.raises(ValueError, match="either subtensor="):
        WeightSetter(1, wallet)
    with pytest.raises(ValueError, match="either subtensor="):
        WeightSetter(1, wallet, handles(chain), network="finney")
    with pytest.raises(TypeError, match=r"bt\.Client, bt\.SyncClient or bt\.Subtensor"):
        WeightSetter(1, wallet, object())
    # bt.Subtensor is a SyncClient: taken as the blocking client, built cold (no connection).
    assert WeightSetter(1, wallet, bt.Subtensor("local")).netuid == 1


# -- weights are checked before anything is sent -------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [{1: math.nan}, {1: math.inf}, {1: -0.5}, {-1: 1.0}, {True: 1.0}, {1: "0.5"}],
)
def test_bad_weights_raise_before_anything_is_sent(
    weights: Any, chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    setter = setter_for(chain)
    with pytest.raises(ValueError, match=r"uid|weight"):
        asyncio.run(setter.set(weights))
    assert chain.sent() == []
    assert sum(setter.stats.attempts.values()) == 0


def test_a_nan_in_an_array_raises(chain: SimChain, setter_for: Callable[..., WeightSetter]) -> None:
    setter = setter_for(chain)
    with pytest.raises(ValueError, match="finite"):
        asyncio.run(setter.set(np.array([0.5, np.nan])))
    with pytest.raises(ValueError, match="1-D"):
        asyncio.run(setter.set(np.ones((2, 2))))
    assert chain.sent() == []


@pytest.mark.parametrize("weights", [{}, {1: 0.0, 2: 0.0}, ScoreBook(8)])
def test_all_zero_weights_are_not_sent(
    weights: Any, chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    setter = setter_for(chain)
    result = asyncio.run(setter.set(weights))
    assert result.outcome == "rejected"
    assert not result
    assert "no uid has a positive weight" in result.message
    assert chain.sent() == []


# -- setting, and the rate limit -----------------------------------------------------------


def test_sets_weights_normalised_with_the_chains_version_key(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    setter = setter_for(chain)
    book = ScoreBook(8, alpha=1.0)
    book.update([1, 2, 3], [1.0, 2.0, 3.0])
    result = asyncio.run(setter.set(book))

    assert result.outcome == "set"
    assert result.success
    assert bool(result)
    success, message = result
    assert success is True
    assert message == result.message
    assert result.block == 1000
    assert result.retry_in_blocks == 10 + GAP_EXTRA
    assert result.raw is not None
    (sent,) = chain.sent("set_mechanism_weights")
    assert sent.params["version_key"] == 7  # read from the chain, never a silent 0
    assert sent.answer.ok
    assert shares(stored(chain)) == pytest.approx({1: 1 / 6, 2: 2 / 6, 3: 3 / 6}, abs=1e-4)
    assert chain.last_update_of(5) == 1000


def test_too_soon_is_a_wait_in_blocks_and_nothing_is_sent(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    setter = setter_for(chain)
    assert asyncio.run(setter.set({1: 1.0})).outcome == "set"
    chain.advance(4)
    result = asyncio.run(setter.set({1: 1.0}))
    assert result.outcome == "rate_limited"
    assert not result
    assert result.retry_in_blocks == 10 + GAP_EXTRA - 4
    assert result.raw is None  # decided from the reads
    assert len(chain.sent()) == 1

    chain.advance(result.retry_in_blocks - 1)
    assert asyncio.run(setter.set({1: 1.0})).outcome == "rate_limited"
    chain.advance(1)
    assert asyncio.run(setter.set({1: 1.0})).outcome == "set"
    assert len(chain.sent()) == 2


@pytest.mark.parametrize("where", ["pallet", "pool"])
def test_the_chains_too_soon_becomes_the_same_wait(
    where: str, chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    """Another process with this hotkey set weights between the read and the send."""
    setter = setter_for(chain)
    chain.pool_rate_limit = where == "pool"
    chain.advance(3)
    chain.before_submit.append(lambda sim: sim.last_update.update({(0, 5): sim.block - 1}))
    result = asyncio.run(setter.set({1: 1.0, 2: 1.0}))

    assert result.outcome == "rate_limited"
    assert result.raw is not None
    (sent,) = chain.sent()
    assert not sent.answer.ok
    # Read again after the answer: one block since that update.
    assert result.retry_in_blocks == 10 + GAP_EXTRA - 1
    if where == "pallet":
        assert CHAIN_ERRORS["SettingWeightsTooFast"] in result.message
    elif MAJOR >= 11:
        assert result.raw.error.name == "RateLimitExceeded"
    else:
        assert "Custom error: 6" in result.message
    # Sent once: bittensor 9.12's set_weights would have sent it again and again.
    assert len(chain.sent()) == 1


# -- the version key -----------------------------------------------------------------------


def test_a_given_version_key_below_the_subnets_is_refused_before_sending(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    result = asyncio.run(setter_for(chain, version_key=6).set({1: 1.0}))
    assert result.outcome == "rejected"
    assert "below subnet 1's weights version 7" in result.message
    assert chain.sent() == []

    assert asyncio.run(setter_for(chain, version_key=9).set({1: 1.0})).outcome == "set"
    assert chain.sent()[-1].params["version_key"] == 9


def test_an_unreadable_weights_version_sends_nothing(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    chain.weights_version = None
    result = asyncio.run(setter_for(chain).set({1: 1.0}))
    assert result.outcome == "error"
    assert "weights version" in result.message
    assert chain.sent() == []


def test_the_chains_version_refusal_is_rejected_with_its_words(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    """The subnet owner raised the version between the read and the send."""
    chain.before_submit.append(lambda sim: setattr(sim, "weights_version", 8))
    result = asyncio.run(setter_for(chain).set({1: 1.0}))
    assert result.outcome == "rejected"
    assert CHAIN_ERRORS["IncorrectWeightVersionKey"] in result.message
    assert len(chain.sent()) == 1


# -- who may set ---------------------------------------------------------------------------


def test_an_unregistered_hotkey_is_not_permitted(
    chain: SimChain, stranger: Any, handles: Callable[..., Any], asynchronous: bool
) -> None:
    setter = WeightSetter(1, stranger, handles(chain, asynchronous=asynchronous))
    result = asyncio.run(setter.set({1: 1.0}))
    assert result.outcome == "not_permitted"
    assert "not registered on subnet 1" in result.message
    assert chain.sent() == []
    setter.close()


def test_no_validator_permit_is_not_permitted(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    chain.permitted = set()
    result = asyncio.run(setter_for(chain).set({1: 1.0, 2: 1.0}))
    assert result.outcome == "not_permitted"
    assert CHAIN_ERRORS["NeuronNoValidatorPermit"] in result.message


def test_only_the_active_scorer_sets_weights(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    active = False
    setter = setter_for(chain, active=lambda: active)
    result = asyncio.run(setter.set({1: 1.0}))
    assert result.outcome == "not_permitted"
    assert "not the active scorer" in result.message
    assert chain.sent() == []
    active = True
    assert asyncio.run(setter.set({1: 1.0})).outcome == "set"


def test_the_active_check_is_made_again_just_before_sending(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    answers = iter([True, False])  # the role is lost while the chain is read
    result = asyncio.run(setter_for(chain, active=lambda: next(answers)).set({1: 1.0}))
    assert result.outcome == "not_permitted"
    assert result.block == 1000  # the chain was read
    assert chain.sent() == []


def test_an_unreachable_chain_is_an_error(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    chain.down = True
    result = asyncio.run(setter_for(chain).set({1: 1.0}))
    assert result.outcome == "error"
    assert "could not read the chain" in result.message
    assert isinstance(result.raw, Exception)


# -- the subnet's limits -------------------------------------------------------------------


def test_weights_are_fitted_to_the_max_weight_limit(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    chain.max_weight_limit = U16_MAX // 4  # no uid above a quarter of the total
    result = asyncio.run(setter_for(chain).set({0: 10.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 6: 1.0}))
    assert result.outcome == "set", result.message
    assert max(shares(stored(chain)).values()) <= 0.25 + 1e-3


def test_weights_are_fitted_to_min_allowed_weights(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    chain.min_allowed_weights = 6
    result = asyncio.run(setter_for(chain).set({1: 3.0, 2: 1.0}))
    assert result.outcome == "set", result.message
    values = stored(chain)
    assert len(values) >= 6
    # The two scored uids keep their order and almost all the weight.
    assert values[1] == U16_MAX
    assert values[2] == pytest.approx(U16_MAX / 3, abs=2)
    assert sum(v for uid, v in values.items() if uid not in (1, 2)) < 0.01 * sum(values.values())


def test_a_uid_outside_the_subnet_is_refused_before_sending(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    result = asyncio.run(setter_for(chain).set({1: 1.0, 8: 1.0}))
    assert result.outcome == "rejected"
    assert "[8]" in result.message
    assert "8 uids" in result.message
    assert chain.sent() == []


def test_mechid_reaches_its_mechanism(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    chain.mechanisms = 2
    result = asyncio.run(setter_for(chain, mechid=1).set({2: 1.0}))
    assert result.outcome == "set", result.message
    assert chain.sent()[-1].params["mecid"] == 1
    assert stored(chain, mechid=1) == {2: U16_MAX}
    assert (0, 5) not in chain.weights

    missing = asyncio.run(setter_for(chain, mechid=2).set({2: 1.0}))
    assert missing.outcome == "rejected"
    assert "2 mechanism(s)" in missing.message
    assert len(chain.sent()) == 1


# -- burn ----------------------------------------------------------------------------------


def test_burn_gives_its_share_to_its_uid(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    result = asyncio.run(setter_for(chain, burn=(0, 0.5)).set({1: 1.0, 2: 3.0}))
    assert result.outcome == "set", result.message
    assert shares(stored(chain)) == pytest.approx({0: 0.5, 1: 0.125, 2: 0.375}, abs=1e-4)


def test_a_full_burn_needs_no_scores(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    result = asyncio.run(setter_for(chain, burn=(0, 1.0)).set({}))
    assert result.outcome == "set", result.message
    assert stored(chain) == {0: U16_MAX}


def test_a_burn_uid_outside_the_subnet_is_refused(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    result = asyncio.run(setter_for(chain, burn=(12, 0.2)).set({1: 1.0}))
    assert result.outcome == "rejected"
    assert "[12]" in result.message
    assert chain.sent() == []


# -- the epoch window and commit-reveal ----------------------------------------------------


def test_in_last_blocks_waits_for_the_end_of_the_epoch(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    setter = setter_for(chain, in_last_blocks=5)
    to_epoch = chain.next_epoch_start() - chain.block
    assert to_epoch > 5  # the fixture's clock starts early in an epoch
    result = asyncio.run(setter.set({1: 1.0}))
    assert result.outcome == "rate_limited"
    assert result.retry_in_blocks == to_epoch - 5
    assert "last 5 blocks of the epoch" in result.message
    assert chain.sent() == []

    chain.advance(result.retry_in_blocks)
    assert asyncio.run(setter.set({1: 1.0})).outcome == "set"


def test_commit_reveal_commits_and_the_chain_reveals(
    chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    chain.commit_reveal = True
    result = asyncio.run(setter_for(chain).set({1: 1.0, 2: 1.0}))
    assert result.outcome == "committed", result.message
    assert result.success
    (sent,) = chain.sent()
    assert sent.function == "commit_timelocked_mechanism_weights"
    (commit,) = chain.commits
    assert chain.reveal() == []
    chain.advance(commit.reveal_at - chain.block)
    assert chain.reveal() == [commit]
    # A commit counts as an update for the rate limit.
    chain.advance(-commit.reveal_at + commit.block + 1)
    assert asyncio.run(setter_for(chain).set({1: 1.0})).outcome == "rate_limited"


# -- the SDK surface and its words -----------------------------------------------------------


def test_every_simulated_call_matched_the_installed_sdk(
    chain: SimChain, handles: Callable[..., Any], wallet: Any, asynchronous: bool
) -> None:
    """Each call was bound to the real method's signature as it was made; here: the
    setter used the reads it needs, and the real class has each of them."""
    handle = handles(chain, asynchronous=asynchronous)
    setter = WeightSetter(1, wallet, handle, in_last_blocks=200, mechid=0)
    chain.commit_reveal = True
    assert asyncio.run(setter.set({1: 1.0})).outcome == "committed"
    used = {name for name, calls in calls_of(handle).items() if len(calls)}
    if MAJOR >= 11:
        expected = {"block_number", "query", "runtime_call", "compose", "submit"}
        real: Any = bt.RpcSubstrate
    else:
        expected = {
            "get_current_block",
            "get_uid_for_hotkey_on_subnet",
            "blocks_since_last_update",
            "weights_rate_limit",
            "get_subnet_hyperparameters",
            "commit_reveal_enabled",
            "min_allowed_weights",
            "max_weight_limit",
            "subnetwork_n",
            "get_next_epoch_start_block",
            "substrate.create_signed_extrinsic",
            "substrate.submit_extrinsic",
        }
        real = bt.AsyncSubtensor if asynchronous else bt.Subtensor
    assert expected <= used, expected - used
    for name in used:
        if not name.startswith("substrate."):
            assert callable(getattr(real, name)), name
    setter.close()


@sdk_only
def test_the_simulated_error_texts_are_the_chains() -> None:
    from bittensor._generated.errors import ERRORS

    catalog = {
        info.name: info.docs
        for info in ERRORS.values()
        if info.pallet == "SubtensorModule" and info.name in CHAIN_ERRORS
    }
    assert catalog == CHAIN_ERRORS


@legacy_only
def test_judges_bittensor_9_and_10_answers() -> None:
    if MAJOR >= 10:
        from bittensor.core.types import ExtrinsicResponse

        assert judge(ExtrinsicResponse(False)).outcome == "rate_limited"  # no attempt made
        assert judge(ExtrinsicResponse(True, "Success"), committed=True).outcome == "committed"
    too_soon = (False, "No attempt made. Perhaps it is too soon to commit weights!")
    assert judge(too_soon).outcome == "rate_limited"
    assert judge((False, "Hotkey 5F.. not registered in subnet 1")).outcome == "not_permitted"
    assert judge(TimeoutError("timed out")).outcome == "error"
    assert judge((True, "")).outcome == "set"


@sdk_only
def test_judges_bittensor_11_answers() -> None:
    from bittensor.result import ErrorCode

    preflight = bt.ChainError(
        "Weights on netuid 1 were last set 3 blocks ago; the rate limit is 10 blocks. "
        "Retry in ~7 blocks (~84s).",
        code=ErrorCode.RATE_LIMITED,
    )
    verdict = judge(preflight)
    assert (verdict.outcome, verdict.retry_in_blocks) == ("rate_limited", 7)
    not_registered = bt.ChainError("not registered", code=ErrorCode.NOT_REGISTERED)
    assert judge(not_registered).outcome == "not_permitted"
    assert judge(bt.BittensorError("All weights are zero; nothing to set.")).outcome == "rejected"
    assert judge(bt.RpcConnectionError("connection refused")).outcome == "error"


# -- stats, logs and metrics ---------------------------------------------------------------


def test_stats_and_a_log_line_per_outcome(
    chain: SimChain, setter_for: Callable[..., WeightSetter], library_log: list[str]
) -> None:
    setter = setter_for(chain)
    asyncio.run(setter.set({1: 1.0}))
    asyncio.run(setter.set({1: 1.0}))  # too soon
    asyncio.run(setter.set({}))  # nothing to send
    stats = setter.stats
    assert set(stats.attempts) == set(OUTCOMES)
    assert stats.attempts["set"] == 1
    assert stats.attempts["rate_limited"] == 1
    assert stats.attempts["rejected"] == 1
    assert stats.last_success_block == 1000
    assert stats.last_success_time is not None
    assert stats.last_success_time <= time.time()
    assert stats.blocks_since_last_update == 0
    assert stats.last_result is not None
    assert stats.last_result.outcome == "rejected"
    assert not stats.running
    lines = [line for line in library_log if line.startswith("weights ")]
    assert [line.split()[1] for line in lines] == ["set", "rate_limited", "rejected"]


def test_metrics_on_a_registry(chain: SimChain, setter_for: Callable[..., WeightSetter]) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    setter = setter_for(chain)
    setter.export_metrics(registry, labels={"validator": "main"})
    asyncio.run(setter.set({1: 1.0}))
    asyncio.run(setter.set({1: 1.0}))

    def value(name: str, **labels: str) -> float | None:
        full = {"netuid": "1", "mechid": "0", "validator": "main", **labels}
        sample: float | None = registry.get_sample_value(name, full)
        return sample

    assert value("organic_scoring_weights_attempts_total", outcome="set") == 1
    assert value("organic_scoring_weights_attempts_total", outcome="rate_limited") == 1
    assert value("organic_scoring_weights_attempts_total", outcome="error") == 0
    assert value("organic_scoring_weights_last_success_block") == 1000
    assert value("organic_scoring_weights_last_success_timestamp_seconds") is not None
    assert value("organic_scoring_weights_blocks_since_last_update") == 0
    with pytest.raises(ValueError, match="already exports"):
        setter.export_metrics(registry, labels={"validator": "main"})
    setter.close()
    assert value("organic_scoring_weights_attempts_total", outcome="set") is None


# -- the background run --------------------------------------------------------------------


@pytest.fixture
def clocked(wallet: Any) -> SimChain:
    """A chain whose blocks come every 10 ms by themselves; rate limit 3 blocks."""
    sim = SimChain(n=4, rate_limit=3, weights_version=2, block_time=0.01, block=500)
    sim.register(wallet.hotkey.ss58_address, 3)
    return sim


@pytest.mark.usefixtures("no_leaks")
def test_background_run_on_its_own_thread(
    clocked: SimChain, wallet: Any, handles: Callable[..., Any]
) -> None:
    book = ScoreBook(4, alpha=1.0)
    book.update([0, 1], [1.0, 2.0])
    setter = WeightSetter(1, wallet, handles(clocked), block_time=0.01)
    setter.start(book)
    assert setter.is_running
    assert setter.stats.running
    with pytest.raises(RuntimeError, match="already running"):
        setter.start(book)
    wait_until(lambda: len(clocked.sent()) >= 3, "three weight sets", timeout=10)
    book.update([2], [4.0])  # the run reads the book at every attempt
    sets_before = len(clocked.sent())
    wait_until(lambda: len(clocked.sent()) >= sets_before + 2, "two more sets", timeout=10)
    setter.stop()
    assert not setter.is_running
    assert all(x.answer.ok for x in clocked.sent())  # it never sent too soon
    assert 2 in stored(clocked, uid=3)
    sent_blocks = [x.block for x in clocked.sent()]
    gaps = [b - a for a, b in itertools.pairwise(sent_blocks)]
    assert min(gaps) >= 3
    setter.stop()  # idempotent
    setter.close()


@pytest.mark.usefixtures("no_leaks")
def test_background_run_as_a_task_with_an_async_client(
    clocked: SimChain, wallet: Any, handles: Callable[..., Any]
) -> None:
    handle = handles(clocked, asynchronous=True)
    setter = WeightSetter(1, wallet, handle, block_time=0.01)
    with pytest.raises(RuntimeError, match="belongs to its event loop"):
        setter.start({0: 1.0})

    async def main() -> None:
        setter.start({0: 1.0, 1: 1.0})
        await until(lambda: len(clocked.sent()) >= 3, "three weight sets")
        await setter.aclose()
        assert not setter.is_running
        assert [task for task in asyncio.all_tasks() if task is not asyncio.current_task()] == []

    asyncio.run(main())
    assert len(clocked.sent()) >= 3


@pytest.mark.usefixtures("no_leaks")
def test_run_is_awaited_and_stopped_from_another_thread(
    clocked: SimChain, wallet: Any, handles: Callable[..., Any], asynchronous: bool
) -> None:
    clocked.down = True  # every attempt an error: the run waits retry_blocks between them
    setter = WeightSetter(
        1, wallet, handles(clocked, asynchronous=asynchronous), block_time=0.01, retry_blocks=2
    )

    async def main() -> None:
        stopper = threading.Timer(0.3, setter.stop)
        stopper.start()
        await asyncio.wait_for(setter.run({0: 1.0}), 10)
        stopper.join()

    asyncio.run(main())
    attempts = setter.stats.attempts["error"]
    assert 3 <= attempts <= 30  # about one per 20 ms, not a storm
    assert not setter.is_running


@pytest.mark.usefixtures("no_leaks")
def test_a_cancelled_run_leaves_nothing_behind(
    clocked: SimChain, wallet: Any, handles: Callable[..., Any]
) -> None:
    setter = WeightSetter(1, wallet, handles(clocked), block_time=0.01)

    async def main() -> None:
        task = asyncio.ensure_future(setter.run({0: 1.0}))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not setter.is_running

    asyncio.run(main())
    setter.start({0: 1.0})  # and it starts again afterwards
    setter.stop()


@pytest.mark.usefixtures("no_leaks")
def test_stop_cancels_an_attempt_that_hangs(
    clocked: SimChain, wallet: Any, handles: Callable[..., Any]
) -> None:
    entered, release = threading.Event(), threading.Event()

    def hang(sim: SimChain) -> None:
        entered.set()
        release.wait(WAIT)

    clocked.before_submit.append(hang)
    setter = WeightSetter(1, wallet, handles(clocked), block_time=0.01)
    setter.start({0: 1.0})
    try:
        wait_until(entered.is_set, "the send")
        began = time.monotonic()
        setter.stop(timeout=0.2)
        assert time.monotonic() - began < WAIT / 2
        assert not setter.is_running
    finally:
        release.set()  # the abandoned call ends; its thread with it
    assert setter.stats.attempts == dict.fromkeys(OUTCOMES, 0)  # cancelled: no outcome


# -- bittensor 11's own client ---------------------------------------------------------------


@sdk_only
@pytest.mark.usefixtures("no_leaks")
def test_network_opens_a_client_of_its_own_and_close_releases_it(
    chain: SimChain, wallet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.weights_chain import SimSubstrate

    opened: list[Any] = []
    real_sync_client = bt.SyncClient

    def sync_client(network: str) -> Any:
        assert network == "finney"
        client = real_sync_client("local", substrate=SimSubstrate(chain))
        opened.append(client)
        return client

    monkeypatch.setattr(bt, "SyncClient", sync_client)
    setter = WeightSetter(1, wallet, network="finney")
    assert opened == []  # opened on first use
    assert asyncio.run(setter.set({1: 1.0})).outcome == "set"
    (client,) = opened
    setter.close()
    assert len(client._client._substrate.calls["close"]) == 1
    chain.advance(20)
    assert asyncio.run(setter.set({1: 1.0})).outcome == "set"  # a new client
    assert len(opened) == 2
    setter.close()
    for each in opened:
        close_sync_client(each)


# -- emit_weights ------------------------------------------------------------------------------


@legacy_only
def test_emit_weights_points_an_async_subtensor_to_the_setter(
    chain: SimChain, handles: Callable[..., Any], wallet: Any
) -> None:
    subtensor = handles(chain, asynchronous=True)
    with pytest.raises(TypeError, match="WeightSetter"):
        emit_weights({1: 1.0}, netuid=1, wallet=wallet, subtensor=subtensor)
    assert chain.sent() == []
    assert calls_of(subtensor)["get_current_block"].calls == []  # nothing was even called


@legacy_only
def test_emit_weights_still_sets_through_a_subtensor(
    chain: SimChain, handles: Callable[..., Any], wallet: Any
) -> None:
    result = emit_weights(
        {1: 1.0, 2: 1.0}, netuid=1, wallet=wallet, subtensor=handles(chain), version_key=7
    )
    assert isinstance(result, WeightsResult)
    assert result.outcome == "set"
    assert stored(chain) == {1: U16_MAX, 2: U16_MAX}


def test_results_keep_their_old_shape() -> None:
    result = WeightsResult(False, "nope")
    assert result.outcome == "error"
    assert tuple(result) == (False, "nope")
    assert WeightsResult(True, "ok").outcome == "set"
    with pytest.raises(ValueError, match="contradicts"):
        WeightsResult(True, "ok", outcome="rejected")
    with pytest.raises(ValueError, match="outcome must be one of"):
        WeightsResult(False, "x", outcome="later")  # type: ignore[arg-type]


def test_the_book_from_a_file_is_a_source(
    tmp_path: Path, chain: SimChain, setter_for: Callable[..., WeightSetter]
) -> None:
    book = ScoreBook(8, alpha=1.0)
    book.update([4], [1.0])
    book.save(tmp_path / "scores.npz")
    setter = setter_for(chain)
    result = asyncio.run(setter.set(lambda: ScoreBook.load(tmp_path / "scores.npz")))
    assert result.outcome == "set"
    assert stored(chain) == {4: U16_MAX}


# -- a chain that cannot be reached ----------------------------------------------------------


@pytest.fixture
def unreachable() -> Iterator[str]:
    """The address of a loopback port that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}"


def _unconnected_subtensor(url: str) -> Any:
    """bittensor 9/10's own ``Subtensor`` for ``url``, not connected when built (as one
    whose node went away since): its first call tries to connect."""
    return bt.Subtensor(network=url, **({"_mock": True} if MAJOR == 9 else {"mock": True}))


@pytest.mark.usefixtures("no_leaks")
def test_emit_weights_answers_with_a_result_when_the_chain_cannot_be_reached(
    unreachable: str, wallet: Any
) -> None:
    if MAJOR >= 11:  # bt.set_weights raises RpcConnectionError
        result = emit_weights({1: 1.0}, netuid=1, wallet=wallet, network=unreachable)
    else:  # Subtensor.set_weights raises ConnectionError
        subtensor = _unconnected_subtensor(unreachable)
        result = emit_weights({1: 1.0}, netuid=1, wallet=wallet, subtensor=subtensor)
    ok, message = result
    assert not ok
    assert result.outcome == "error"
    assert message.startswith("could not set weights: ")
    assert "ConnectionError" in message
    assert isinstance(result.raw, Exception)


@pytest.mark.usefixtures("no_leaks")
def test_the_setter_answers_with_a_result_when_the_chain_cannot_be_reached(
    unreachable: str, wallet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Any] = []
    if MAJOR >= 11:  # its own bt.SyncClient(network), the SDK's, kept to close its loop after
        real_sync_client = bt.SyncClient

        def sync_client(network: str) -> Any:
            opened.append(real_sync_client(network))
            return opened[-1]

        monkeypatch.setattr(bt, "SyncClient", sync_client)
        setter = WeightSetter(1, wallet, network=unreachable)
    else:
        setter = WeightSetter(1, wallet, _unconnected_subtensor(unreachable))
    try:
        result = asyncio.run(setter.set({1: 1.0}))
    finally:
        setter.close()
        for client in opened:
            close_sync_client(client)
    assert result.outcome == "error"
    assert result.message.startswith("could not read the chain: ")
    assert "ConnectionError" in result.message
    assert setter.stats.attempts["error"] == 1
