"""A real SMTP server for the SMTP integration tests (aiosmtpd from PyPI).

Usage: smtp_sink.py FOLDER

Listens on a free port of 127.0.0.1 and prints that port on the first line of stdout.
Writes every accepted message, byte for byte as received, to FOLDER/NNNN.eml (written to
a temporary name first, then renamed, so a reader never sees half a message). Recipients
whose local part starts with "reject" get a permanent 550, those starting with "later"
a transient 451. Exits when its stdin closes, so it never outlives the test that started it.
"""
import asyncio
import os
import socket
import sys

try:
    from aiosmtpd.smtp import SMTP
except ImportError as e:
    print(f"missing: aiosmtpd ({e})", flush=True)
    sys.exit(3)


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("reject"):
            return "550 5.1.1 Mailbox unavailable"
        if local.startswith("later"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        tmp = os.path.join(self.folder, f".{self.count:04}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
        os.replace(tmp, os.path.join(self.folder, f"{self.count:04}.eml"))
        return "250 2.0.0 Queued"


async def main(folder):
    sink = Sink(folder)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="convene-test-sink", decode_data=False, enable_SMTPUTF8=True),
        sock=sock,
    )
    print(sock.getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
