"""Every example under examples/ runs here, against local stand-ins for the chain.

The examples are loaded by path (``examples`` is not a package). Each runs for real
on 127.0.0.1: real axons, dendrites and miners on bittensor 9/10, the real signed-HTTP
server and client on 11; only the chain is a stand-in (tests/support/chain.py), whose
methods bind their arguments against the real bittensor signatures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import bittensor as bt
import numpy as np
import pytest

from organic_scoring._compat import HAS_AXON, HAS_HTTP_AUTH
from organic_scoring.synth_dataset import SynthDatasetEntry
from organic_scoring.weights import WeightSetter
from support.axons import (
    BITTENSOR_WARNINGS,
    astream,
    query,
    running_axon,
    serve_scorer,
    settled,
)
from support.chain import (
    FakeClient,
    FakeMetagraph,
    FakeMetagraph11,
    FakeNeuron,
    FakeSubtensor,
    SetWeightsRecorder,
)
from support.loopback import free_port, make_wallet
from support.waiting import WAIT, wait_until
from support.weights_chain import SimChain, close_sync_client, sim_for

U16_MAX = 65535

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

needs_axon = pytest.mark.skipif(not HAS_AXON, reason="bittensor 11 has no axon")
needs_http_auth = pytest.mark.skipif(not HAS_HTTP_AUTH, reason="bt.http_auth is bittensor 11's")
pytestmark = [pytest.mark.bittensor, pytest.mark.usefixtures("no_leaks"), BITTENSOR_WARNINGS]


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as the module ``examples_<name>`` (once per session)."""
    module_name = f"examples_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>.py`` as a script, as a reader would."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=WAIT * 6,
        check=False,
    )


def status(reply: Any) -> int:
    return int(reply.dendrite.status_code)


# -- quickstart (the README's Quick start) -----------------------------------------------


def test_quickstart_scores_organic_and_synthetic_samples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = load("quickstart")
    scoring = example.main(iterations=4)
    stats = scoring.stats
    assert not scoring.is_running
    assert stats.organic_scored == 1
    assert stats.iterations >= 4
    assert stats.failed_iterations == 0
    assert stats.organic_unaccounted == 0
    weights = scoring.book.as_dict()
    assert max(weights, key=weights.__getitem__) == 0  # the miner that matched the reference
    assert 2 not in weights  # the silent one
    assert "iterations: " in capsys.readouterr().out


def test_quickstart_runs_as_a_script() -> None:
    done = run_script("quickstart")
    assert done.returncode == 0, done.stderr
    assert "organic requests: accepted 1, scored 1" in done.stdout
    assert "weights: {0:" in done.stdout
    assert "Traceback" not in done.stderr


# -- minimal -----------------------------------------------------------------------------


def test_minimal_scores_organic_then_synthetic_samples(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("minimal")
    scoring = example.main(iterations=4)
    stats = scoring.stats
    assert not scoring.is_running
    assert stats.organic_scored == 2
    assert stats.synthetic_iterations >= 2
    assert stats.failed_iterations == 0
    assert stats.organic_unaccounted == 0
    # The miner that does the task ends up with the most weight; the silent one with none.
    weights = scoring.book.as_dict()
    assert max(weights, key=weights.__getitem__) == 0
    assert weights.get(2, 0.0) == 0.0
    out = capsys.readouterr().out
    assert "iteration 1: organic sample" in out
    assert "final weights" in out


def test_minimal_runs_as_a_script() -> None:
    done = run_script("minimal")
    assert done.returncode == 0, done.stderr
    assert "synthetic sample" in done.stdout
    assert "final weights: {0:" in done.stdout
    assert "Traceback" not in done.stderr


# -- template validator, bittensor 9/10 --------------------------------------------------


@contextmanager
def joined_threads(name_endings: tuple[str, ...]) -> Iterator[None]:
    """Join the threads started inside the block whose names end with ``name_endings``."""
    before = set(threading.enumerate())
    try:
        yield
    finally:
        for thread in set(threading.enumerate()) - before:
            if thread.name.endswith(name_endings):
                thread.join(WAIT)
                assert not thread.is_alive(), f"{thread.name} outlived the test"


def weights_chain(hotkeys: list[str]) -> SimChain:
    """A simulated chain for the examples' weight setter: subnet 7 with these hotkeys,
    weights version 3, a rate limit of 2 blocks, and a block every 10 ms."""
    chain = SimChain(netuid=7, n=len(hotkeys), rate_limit=2, weights_version=3, block_time=0.01)
    for uid, hotkey in enumerate(hotkeys):
        chain.register(hotkey, uid)
    return chain


def assert_weights_set(chain: SimChain) -> None:
    """The validator (uid 1) set weights on the answering miner only (uid 2 never
    answered, uid 1 is the validator itself and is not queried), with the subnet's
    version key, and never too soon."""
    assert chain.weights[(0, 1)] == {0: U16_MAX}
    sent = chain.sent()
    assert sent
    assert all(x.answer.ok and x.params["version_key"] == 3 for x in sent)


@needs_axon
def test_template_validator_scores_organic_prompts_and_sets_weights(tmp_path: Path) -> None:
    example = load("template_validator_axon")
    validator_wallet = make_wallet(tmp_path, "validator")
    miner_wallet = make_wallet(tmp_path, "miner")
    user_wallet = make_wallet(tmp_path, "user")
    offline_wallet = make_wallet(tmp_path, "offline")
    asked: list[str] = []

    def answer(synapse: Any) -> Any:
        asked.append(synapse.prompt)
        synapse.completion = synapse.prompt[::-1]
        return synapse

    # bittensor reads the annotations unevaluated; give it the class, not a string.
    answer.__annotations__ = {"synapse": example.MinerTask, "return": example.MinerTask}

    with running_axon(miner_wallet, lambda axon: axon.attach(forward_fn=answer)) as miner_axon:
        port = free_port()
        axon = bt.Axon(wallet=validator_wallet, ip="127.0.0.1", external_ip="127.0.0.1", port=port)
        axon.fast_config.host = "127.0.0.1"  # bittensor would bind every interface
        # uid 2 is registered but serves nothing: nothing listens on its port.
        offline = bt.AxonInfo(
            version=1,
            ip="127.0.0.1",
            port=free_port(),
            ip_type=4,
            hotkey=offline_wallet.hotkey.ss58_address,
            coldkey=offline_wallet.coldkeypub.ss58_address,
        )
        metagraph = FakeMetagraph(
            hotkeys=[
                miner_wallet.hotkey.ss58_address,
                validator_wallet.hotkey.ss58_address,
                offline_wallet.hotkey.ss58_address,
            ],
            axons=[miner_axon.info(), axon.info(), offline],
        )
        subtensor = FakeSubtensor()
        chain = weights_chain(metagraph.hotkeys)
        setter = WeightSetter(7, validator_wallet, sim_for(chain), block_time=0.01)
        # A dendrite looks up its external IP on the web when built; stay on loopback.
        with mock.patch("bittensor.utils.networking.get_external_ip", return_value="127.0.0.1"):
            validator = example.Validator(
                wallet=validator_wallet,
                allowed_hotkeys=[user_wallet.hotkey.ss58_address],
                subtensor=subtensor,
                metagraph=metagraph,
                axon=axon,
                weight_setter=setter,
                netuid=7,
                query_timeout=5.0,
                sync_every=3,
            )
        scoring = validator.organic
        runner = threading.Thread(target=validator.run, name="validator-run")
        try:
            with joined_threads(("(_wrapper_run)", "(run)")):
                runner.start()
                try:
                    wait_until(
                        lambda: axon.fast_server.started and scoring.is_running, "the validator"
                    )
                    settled(axon)
                    reply = query(axon, user_wallet, example.OrganicPrompt(prompt="organic hello"))
                    assert status(reply) == 200
                    assert reply.queued is True
                    # A registered miner may not send organic prompts (_blacklist_fn).
                    refused = query(axon, miner_wallet, example.OrganicPrompt(prompt="mine"))
                    assert status(refused) == 403
                    wait_until(
                        lambda: scoring.stats.organic_scored >= 1, "the organic prompt scored"
                    )
                    wait_until(lambda: validator.step >= 3, "a metagraph sync")
                    wait_until(lambda: (0, 1) in chain.weights, "the weights on chain")
                finally:
                    validator.should_exit = True
                    runner.join(WAIT)
                assert not runner.is_alive()
            axon.thread_pool.shutdown(wait=True)
        finally:
            # Dendrite.__del__ warns if it is collected while some thread's event loop
            # runs, even with nothing left to close; its sessions were closed in use.
            validator.dendrite.close_session = lambda *args, **kwargs: None

    assert not scoring.is_running
    assert not setter.is_running
    assert "organic hello" in asked
    assert "mine" not in asked
    stats = scoring.stats
    assert stats.failed_iterations == 0
    assert stats.organic_accepted == 1
    assert stats.organic_unaccounted == 0
    assert_weights_set(chain)
    assert len(metagraph.sync_calls) >= 1
    assert metagraph.sync_calls.calls[0]["subtensor"] is subtensor
    assert len(subtensor.wait_for_block_calls) >= 3


@needs_axon
def test_template_validator_axon_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("template_validator_axon")
    args = example.parse_args(
        ["--netuid", "3", "--organic.allowed_hotkeys", "a", "b", "--axon.port", "9000"]
    )
    assert (args.netuid, args.allowed_hotkeys, args.axon_port) == (3, ["a", "b"], 9000)
    assert example.parse_args(["--netuid", "3"]).allowed_hotkeys is None
    with pytest.raises(SystemExit) as exited:
        example.parse_args(["--help"])
    assert exited.value.code == 0
    assert "--organic.allowed_hotkeys" in capsys.readouterr().out


# -- template validator, bittensor 11 ----------------------------------------------------


@contextmanager
def signed_http_miner(wallet: Any, path: str, asked: list[tuple[str, str]]) -> Iterator[Any]:
    """A miner on 127.0.0.1 that checks each query's btauth/1 signature and answers it.

    ``asked`` collects ``(caller hotkey, prompt)`` per accepted query.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from organic_scoring.http import serve_in_thread

    hotkey = wallet.hotkey.ss58_address
    nonces = bt.http_auth.InMemoryNonceStore()

    async def task(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            caller = bt.http_auth.verify(
                dict(request.headers),
                body,
                method=request.method,
                path=request.url.path,
                self_hotkey_ss58=hotkey,
                nonce_store=nonces,
            )
        except bt.http_auth.AuthError as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        prompt = (await request.json())["prompt"]
        asked.append((caller.hotkey_ss58, prompt))
        return JSONResponse({"completion": prompt[::-1]})

    app = Starlette(routes=[Route(path, task, methods=["POST"])])
    with serve_in_thread(app, host="127.0.0.1", port=0) as server:
        yield server


@needs_http_auth
def test_template_validator_http_scores_organic_prompts_and_sets_weights(tmp_path: Path) -> None:
    from organic_scoring.errors import OrganicRequestError
    from organic_scoring.http import OrganicClient

    example = load("template_validator_http")
    validator_wallet = make_wallet(tmp_path, "validator")
    miner_wallet = make_wallet(tmp_path, "miner")
    user_wallet = make_wallet(tmp_path, "user")
    offline_wallet = make_wallet(tmp_path, "offline")
    asked: list[tuple[str, str]] = []

    with signed_http_miner(miner_wallet, example.MINER_PATH, asked) as miner:
        metagraph = FakeMetagraph11(
            netuid=7,
            neurons=[
                FakeNeuron(0, miner_wallet.hotkey.ss58_address, f"127.0.0.1:{miner.port}"),
                FakeNeuron(1, validator_wallet.hotkey.ss58_address, None),
                # Registered and announced, but nothing listens there.
                FakeNeuron(2, offline_wallet.hotkey.ss58_address, f"127.0.0.1:{free_port()}"),
            ],
        )
        client = FakeClient(metagraph)
        chain = weights_chain(metagraph.hotkeys)
        weights_client = sim_for(chain)  # a bt.SyncClient over the simulated chain
        setter = WeightSetter(7, validator_wallet, weights_client, block_time=0.01)
        validator = example.Validator(
            wallet=validator_wallet,
            allowed_hotkeys=[user_wallet.hotkey.ss58_address],
            client=client,
            metagraph=metagraph,
            weight_setter=setter,
            netuid=7,
            host="127.0.0.1",
            port=0,
            query_timeout=5.0,
            sync_every=3,
        )
        scoring = validator.organic
        validator_hotkey = validator_wallet.hotkey.ss58_address

        async def send(wallet: Any, prompt: str) -> Any:
            url = f"{validator.server.url}/organic"
            async with OrganicClient(wallet, url, validator_hotkey, timeout=WAIT) as user:
                return await user.call(example.OrganicPrompt(prompt=prompt), example.Receipt)

        runner = threading.Thread(target=validator.run, name="validator-run")
        runner.start()
        try:
            wait_until(lambda: validator.server is not None and scoring.is_running, "the validator")
            receipt = asyncio.run(send(user_wallet, "organic hello"))
            assert receipt == example.Receipt(queued=True)
            # A registered miner may not send organic prompts (_blacklist_fn).
            with pytest.raises(OrganicRequestError) as refused:
                asyncio.run(send(miner_wallet, "mine"))
            assert refused.value.status_code == 403
            wait_until(lambda: scoring.stats.organic_scored >= 1, "the organic prompt scored")
            wait_until(lambda: validator.step >= 3, "a metagraph sync")
            wait_until(lambda: (0, 1) in chain.weights, "the weights on chain")
        finally:
            validator.should_exit = True
            runner.join(WAIT)
            close_sync_client(weights_client)
        assert not runner.is_alive()

    assert not scoring.is_running
    assert not validator.server.is_running
    assert (validator_hotkey, "organic hello") in asked
    assert all(caller == validator_hotkey for caller, _ in asked)
    assert "mine" not in [prompt for _, prompt in asked]
    stats = scoring.stats
    assert stats.failed_iterations == 0
    assert stats.organic_accepted == 1
    assert stats.organic_unaccounted == 0
    assert not setter.is_running
    assert_weights_set(chain)
    assert len(client.subnets.metagraph_calls) >= 1
    assert len(client.wait_for_block_calls) >= 3


@needs_http_auth
def test_template_validator_http_command_line() -> None:
    done = run_script("template_validator_http", "--help")
    assert done.returncode == 0, done.stderr
    assert "--organic.allowed_hotkeys" in done.stdout
    args = load("template_validator_http").parse_args(
        ["--netuid", "3", "--organic.allowed_hotkeys", "a", "b", "--port", "9000"]
    )
    assert (args.netuid, args.allowed_hotkeys, args.port) == (3, ["a", "b"], 9000)


# -- streaming LLM handlers --------------------------------------------------------------


def quick_start_shape(prompt: str, completion: str, caller: str) -> SynthDatasetEntry:
    """The streaming examples' record: the quick start's sample, with what was served."""
    return SynthDatasetEntry(
        roles=["user"], messages=[prompt], organic=True, completion=completion, caller=caller
    )


def expected_reply(example: ModuleType, prompt: str) -> str:
    """The whole completion the example's fake model gives for ``prompt``."""

    async def collect() -> str:
        return "".join([token async for token in example.fake_llm(prompt)])

    return asyncio.run(collect())


@needs_axon
def test_streaming_axon_handler_streams_in_order_then_queues_the_record(tmp_path: Path) -> None:
    example = load("streaming_llm_axon")
    server, user = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "user")
    prompt = "why is the sky blue?"
    expected = expected_reply(example, prompt)

    with serve_scorer(server, lambda axon: example.StreamingChatScoring(axon=axon)) as (
        axon,
        scoring,
    ):
        chunks, final = asyncio.run(astream(axon, user, example.Chat(prompt=prompt)))
        assert status(final) == 200
        assert len(chunks) >= 1
        assert "".join(chunks) == expected
        assert final.completion == expected
        record = scoring.organic_queue.sample()
        assert scoring.organic_queue.size == 0
    assert record == quick_start_shape(prompt, expected, user.hotkey.ss58_address)
    assert scoring.stats.organic_accepted == 1


@needs_axon
def test_streaming_axon_example_runs_as_a_script() -> None:
    example = load("streaming_llm_axon")
    done = run_script("streaming_llm_axon", "what", "is", "tao?")
    assert done.returncode == 0, done.stderr
    assert expected_reply(example, "what is tao?") in done.stdout
    assert "queued for scoring: 1 organic record(s)" in done.stdout
    assert "rewards: {0: 1.0}" in done.stdout
    assert "Traceback" not in done.stderr


@needs_http_auth
def test_streaming_http_handler_streams_in_order_then_queues_the_record(tmp_path: Path) -> None:
    from organic_scoring.http import OrganicClient, create_app, serve_in_thread

    example = load("streaming_llm_http")
    server_wallet, user = make_wallet(tmp_path, "validator"), make_wallet(tmp_path, "user")
    hotkey = server_wallet.hotkey.ss58_address
    prompt = "why is the sky blue?"
    expected = expected_reply(example, prompt)
    scoring = example.StreamingChatScoring()
    app = create_app(scoring, hotkey_ss58=hotkey, allowed_hotkeys=[user.hotkey.ss58_address])

    async def receive(url: str) -> list[str]:
        async with OrganicClient(user, url, hotkey, timeout=WAIT) as client:
            return [chunk async for chunk in example.chat(client, prompt)]

    with serve_in_thread(app, host="127.0.0.1", port=0) as server:
        chunks = asyncio.run(receive(f"{server.url}/organic"))
    assert len(chunks) >= 1
    assert "".join(chunks) == expected
    assert scoring.organic_queue.size == 1
    record = scoring.organic_queue.sample()
    assert record == quick_start_shape(prompt, expected, user.hotkey.ss58_address)
    assert scoring.stats.organic_accepted == 1


@needs_http_auth
def test_streaming_http_example_runs_as_a_script() -> None:
    example = load("streaming_llm_http")
    done = run_script("streaming_llm_http", "what", "is", "tao?")
    assert done.returncode == 0, done.stderr
    assert expected_reply(example, "what is tao?") in done.stdout
    assert "queued for scoring: 1 organic record(s)" in done.stdout
    assert "rewards: {0: 1.0}" in done.stdout
    assert "Traceback" not in done.stderr


# -- the stand-ins themselves ------------------------------------------------------------


@needs_axon
def test_subtensor_standin_refuses_what_the_real_subtensor_would() -> None:
    subtensor = FakeSubtensor(block_time=0.0)
    with pytest.raises(TypeError):
        subtensor.set_weights(netuid=1, uids=[0], weights=[1.0])  # no wallet
    with pytest.raises(TypeError):
        subtensor.set_weights(wallet=None, netuid=1, uids=[0], weights=[1.0], weight=[1.0])
    assert len(subtensor.set_weights_calls) == 0


@needs_http_auth
def test_set_weights_standin_refuses_what_the_real_one_would() -> None:
    recorder = SetWeightsRecorder()
    with pytest.raises(TypeError):
        recorder(1, {0: 1.0}, None)  # wallet is keyword-only
    with pytest.raises(TypeError):
        recorder(1, {0: 1.0}, subtensor=object())
    assert len(recorder.calls) == 0
    recorder(1, {0: 1.0}, wallet="validator", network="local")
    (call,) = recorder.calls.calls
    assert (call["netuid"], call["weights"], call["wallet"]) == (1, {0: 1.0}, "validator")
    assert call["network"] == "local"
    assert call["uids"] is None  # the defaults are filled in, as the real call sees them


# -- wandb logging ------------------------------------------------------------------------


class RecordingRun:
    """Stands in for a wandb run (wandb is not a dependency of the tests): keeps the rows."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def log(self, row: dict[str, Any]) -> None:
        self.rows.append(row)


def test_wandb_logging_logs_timings_and_rewards_but_no_prompt() -> None:
    example = load("wandb_logging")
    secret = "my password is hunter2, please echo it"
    prompts: list[str] = []

    class Watched(example._Demo):  # type: ignore[name-defined,misc]
        async def _query_miners(self, sample: Any) -> Any:
            assert isinstance(sample, SynthDatasetEntry)  # the quick start's shape
            prompts.append(sample.messages[-1])
            return await super()._query_miners(sample)

    scoring = Watched(synth_dataset=example.default_dataset(seed=0))
    scoring.wandb_run = RecordingRun()

    async def run() -> None:
        await scoring.receive_organic(secret)
        for _ in range(3):
            await scoring.loop_iteration()

    asyncio.run(run())
    rows = scoring.wandb_run.rows
    assert [row["is_organic_sample"] for row in rows] == [True, False, False]
    for row in rows:
        assert set(example.TIMINGS) <= set(row)
        assert all(isinstance(row[key], float) for key in example.TIMINGS)
        assert {"reward/0", "reward/1", "reward/2", "reward_mean", "reward_max"} <= set(row)
        assert row["reward/0"] == 1.0
    logged = json.dumps(rows)
    assert prompts[0] == secret
    assert len(prompts) == 3
    for prompt in prompts:
        assert prompt not in logged
    assert "hunter2" not in logged


def test_wandb_row_takes_rewards_in_any_shape() -> None:
    example = load("wandb_logging")
    logs = {"organic_time_total": 0.5, "is_organic_sample": False, "sample": "secret"}
    row = example.wandb_row(logs, np.array([0.25, float("nan"), 1.0]))
    assert row == {
        "organic_time_total": 0.5,
        "is_organic_sample": False,
        "reward/0": 0.25,
        "reward/2": 1.0,
        "reward_mean": 0.625,
        "reward_max": 1.0,
    }
    assert example.wandb_row(logs, {7: 0.5, 9: "n/a"})["reward/7"] == 0.5
    assert "reward_mean" not in example.wandb_row(logs, None)


def test_wandb_example_imports_without_wandb() -> None:
    path = str(EXAMPLES / "wandb_logging.py")
    code = (
        "import sys, importlib.util; sys.modules['wandb'] = None\n"
        f"spec = importlib.util.spec_from_file_location('w', {path!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "try:\n    module.open_run(project='x')\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT * 6
    )
    assert done.returncode == 0, done.stderr
    assert "pip install wandb" in done.stdout
