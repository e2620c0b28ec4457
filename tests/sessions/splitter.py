"""A TCP round robin on loopback, as Swarm's VIP balances connections: each new connection goes
to the next upstream port, and bytes pass both ways untouched. With two mcp-edge processes
behind it, a client's answer POST (sent on a connection of its own) lands on the other process
about half the time.

    python3 splitter.py LISTEN_PORT UPSTREAM_PORT... [--seconds N]

Loopback only; it stops by itself after --seconds (default 900).
"""

import argparse
import asyncio
import itertools


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("listen", type=int)
    parser.add_argument("upstreams", type=int, nargs="+")
    parser.add_argument("--seconds", type=float, default=900)
    args = parser.parse_args()
    ports = itertools.cycle(args.upstreams)

    async def handle(reader, writer):
        port = next(ports)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", args.listen)
    async with server:
        await asyncio.sleep(args.seconds)


if __name__ == "__main__":
    asyncio.run(main())
