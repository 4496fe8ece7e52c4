"""One flaky endpoint does not stall the run: lone endpoints come back as soon as a health check passes,
outage counts decay with successes, and hosted APIs without /health are checked on /v1/models.
The flaky servers are FAKES (tests/support/fake_openai.py): a real server cannot be made to fail on cue."""

import asyncio

from distill.engines import SamplingParams
from distill.engines.openai import OUTAGE_DECAY_SUCCESSES, OpenAIEngine
from distill.engines.config import EngineSection
from support.fake_openai import FakeOpenAIServer

MESSAGES = [{"role": "user", "content": "Compute 1 + 1."}]


def engine_cfg(*urls, **over):
    settings = dict(max_retries=5, backoff_base_s=0.01, backoff_max_s=0.02, vllm_extensions=False,
                    endpoint_failures_before_down=3, health_check_interval_s=0.05)
    return EngineSection(kind="openai", model="fake", base_urls=list(urls), **{**settings, **over})


def test_a_lone_flaky_endpoint_is_put_back_when_healthy_not_after_its_cooldown():
    # 30% of answers are 500s, three in a row each time: the endpoint is taken out. Each outage used to idle the run
    # for the whole cooldown; now a health check puts it back. With an hour's cooldown, only that can finish the run
    # (the two-minute bound only keeps a regression from hanging the suite: nothing here measures speed).
    faults = (["500"] * 3 + ["ok"] * 7) * 3
    with FakeOpenAIServer(faults) as server:
        engine = OpenAIEngine(engine_cfg(server.base_url, endpoint_cooldown_s=3600))

        async def go():
            try:
                return [await engine.complete(MESSAGES, SamplingParams(n=1)) for _ in range(21)]
            finally:
                await engine.close()

        results = asyncio.run(asyncio.wait_for(go(), timeout=120))
    assert all(r.completions[0].text for r in results)
    assert engine.endpoints[0].outages >= 1 and "/health" in server.health_checks


def test_an_endpoint_taken_out_is_put_back_after_its_cooldown_and_its_outage_count_decays(capsys):
    with FakeOpenAIServer(["500"] * 3) as flaky, FakeOpenAIServer() as steady:
        engine = OpenAIEngine(engine_cfg(flaky.base_url, steady.base_url, endpoint_cooldown_s=0.3))
        a, b = engine.endpoints

        async def go():
            try:
                first = await engine.complete(MESSAGES, SamplingParams(n=1))
                assert not a.up and a.outages == 1 and first.endpoint == steady.base_url  # the retry moved to the other
                await engine.complete(MESSAGES, SamplingParams(n=1))
                assert not a.up and not flaky.health_checks  # the other one serves: the cooldown is waited out
                await asyncio.sleep(0.4)
                return [await engine.complete(MESSAGES, SamplingParams(n=1)) for _ in range(3 * OUTAGE_DECAY_SUCCESSES)]
            finally:
                await engine.close()

        later = asyncio.run(go())
    assert flaky.health_checks == ["/health"] and a.up
    assert "taken out" in capsys.readouterr().out
    assert sum(r.endpoint == flaky.base_url for r in later) >= OUTAGE_DECAY_SUCCESSES  # back in service
    assert a.outages == 0  # its successes since wiped the outage: its next cooldown starts short again


def test_a_hosted_api_without_health_is_checked_on_v1_models(monkeypatch):
    monkeypatch.setenv("FAKE_API_KEY", "secret")
    with FakeOpenAIServer(["500"] * 3, health=False, api_key="secret") as server:
        engine = OpenAIEngine(engine_cfg(server.base_url, endpoint_cooldown_s=10, api_key_env="FAKE_API_KEY",
                                         all_down_timeout_s=3))

        async def go():
            try:
                return await engine.complete(MESSAGES, SamplingParams(n=1))
            finally:
                await engine.close()

        result = asyncio.run(go())
    assert result.completions[0].error is None and engine.endpoints[0].outages == 1
    assert server.health_checks[-1] == "/v1/models"
    assert engine.endpoints[0].health_url == f"{server.base_url}/models"


def test_a_hosted_api_refusing_the_key_is_not_healthy():
    with FakeOpenAIServer(health=False, api_key="secret") as server:
        engine = OpenAIEngine(engine_cfg(server.base_url))

        async def go():
            try:
                return await engine._healthy(engine.endpoints[0])
            finally:
                await engine.close()

        assert asyncio.run(go()) is False
    assert server.health_checks == ["/v1/models"]
