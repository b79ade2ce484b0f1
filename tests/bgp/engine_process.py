"""An engine in a process of its own, to be killed by a test: `python -m
tests.bgp.engine_process SPEAKER_NS WORKDIR`. Announces one FlowSpec rule, prints ExaBGP's
pid once ExaBGP accepted it, then runs until killed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from control.bgp.announcements import FlowSpecRule
from control.bgp.engine import Accepted, BgpEngine
from lab.bird import speaker_config
from lab.netns import nsenter_argv

RULE = FlowSpecRule(destination="203.0.113.7/32", protocol=17, src_port=123)


async def main(speaker_ns: str, workdir: Path) -> None:
    engine = BgpEngine(speaker_config(), workdir, argv_prefix=nsenter_argv(speaker_ns, []))
    await engine.start()
    async with asyncio.timeout(60):
        while not engine.speaker.connected:  # noqa: ASYNC110 - a helper, not the engine
            await asyncio.sleep(0.05)
    result = await engine.announce(RULE, ["203.0.113.0/24"])
    assert isinstance(result, Accepted) and result.sent, result
    print(engine.speaker.pid, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
