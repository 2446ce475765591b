"""A bounded load test: 20 concurrent streamed requests against one worker whose concurrency limit is 2."""

import asyncio
import json

import httpx
import pytest
from serve_helpers import WORKER_CONCURRENCY, b64_png, generate_payload, registered_workers, scene_image, wait_until

NUM_REQUESTS = 20


async def _load(worker: str, controller: str):
    samples, reported = [], []
    async with httpx.AsyncClient(timeout=180, limits=httpx.Limits(max_connections=NUM_REQUESTS + 5)) as client:

        async def one(i: int) -> list[dict]:
            # Distinct images and lengths, so each answer can be matched to its request.
            payload = generate_payload(images=[b64_png(scene_image(160 + 8 * i, 120))], max_new_tokens=20 + i)
            async with client.stream("POST", f"{worker}/worker_generate_stream", json=payload) as response:
                assert response.status_code == 200
                return [json.loads(line) async for line in response.aiter_lines() if line]

        async def poll():
            while True:
                samples.append((await client.post(f"{worker}/worker_get_concurrency")).json())
                workers = (await client.post(f"{controller}/list_workers")).json()["workers"]
                reported.append(workers[worker]["queue_length"])
                await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        try:
            results = await asyncio.gather(*(one(i) for i in range(NUM_REQUESTS)))
        finally:
            poller.cancel()
    return results, samples, reported


@pytest.mark.slow
def test_twenty_concurrent_streams_all_complete_within_the_concurrency_limit(worker, controller):
    results, samples, reported = asyncio.run(_load(worker, controller))

    # None lost: every request got its own complete answer.
    assert len(results) == NUM_REQUESTS
    for i, chunks in enumerate(results):
        final = chunks[-1]
        assert final["finished"] and final["error_code"] == 0
        assert final["usage"]["completion_tokens"] == 20 + i
        assert final["pruning"]["kept_image_tokens"] == 132
        assert sum(1 for chunk in chunks if chunk.get("finished")) == 1

    # The queue the worker reports is what it runs plus what waits, never more than the limit runs.
    assert samples, "the poller never got an answer"
    for sample in samples:
        assert sample["limit_model_concurrency"] == WORKER_CONCURRENCY
        assert 0 <= sample["running"] <= WORKER_CONCURRENCY
        assert sample["queue_length"] == sample["running"] + sample["waiting"] <= NUM_REQUESTS
    peak = max(sample["queue_length"] for sample in samples)
    assert max(sample["running"] for sample in samples) == WORKER_CONCURRENCY
    assert peak >= NUM_REQUESTS // 2, f"the requests were not queued together (peak queue {peak})"
    waited = sorted(chunks[-1]["queue_seconds"] for chunks in results)
    assert waited[-1] > 0.1  # the last ones really waited for a slot
    assert sum(1 for s in waited if s > 1e-3) >= NUM_REQUESTS - 2 * WORKER_CONCURRENCY

    # The heartbeats carried the queue to the controller, and it drains back to zero.
    assert max(reported) > 0
    assert httpx.post(f"{worker}/worker_get_concurrency").json()["queue_length"] == 0
    wait_until(lambda: registered_workers(controller)[worker]["queue_length"] == 0, 5, what="the reported queue to drain")
