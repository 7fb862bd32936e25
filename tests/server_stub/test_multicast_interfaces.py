"""The server's interface lookups for multicast (``ip -j``), on loopback: right answers, and the loop keeps running."""
import asyncio

from server_stub.multicast import interface_address, interface_for


def test_loopback_is_found_both_ways():
    assert asyncio.run(interface_address("lo")) == "127.0.0.1"
    assert asyncio.run(interface_for("127.0.0.1")) == "lo"
    assert asyncio.run(interface_address("no-such-if0")) is None


def test_the_lookup_does_not_block_the_event_loop():
    """Other requests are served while ``ip`` runs: a ticker task advances during the lookup."""
    async def main() -> tuple[str | None, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        address = await interface_address("lo")
        during = ticks - before
        task.cancel()
        return address, during

    address, during = asyncio.run(main())
    assert address == "127.0.0.1" and during > 1
