"""Multicast sessions: the server sends an image's files with udp-sender, one after the other, to the
clients of a session at once (docs/multicast.md).

    create()  pins the image's version on a storage node that is a directory on this server (the node's
              local --rsync-target), lists its partition streams in the manifest's order, queues a
              ``multicast`` task per host
    _run()    waits until min_receivers clients are ready (disk checked, table written), or max_wait seconds
              after the first one, or ``go``; then one udp-sender per file (portbase + 2·i), the receivers
              being those that were ready; a receiver udp-sender drops is reported, the others go on
    cancel()/close()  stop the session's udp-sender by its PID (SIGTERM, then SIGKILL: udpcast.SenderProcess)

A chunked partition (its file is an index, ``dNpM.cidx``) has no file to give udp-sender: a ChunkFeed thread
writes its stream (header and bitmap, then the chunks as stored) into udp-sender's stdin (chunkfeed.py).

udp-sender runs under udpcast.SenderProcess (its stderr parser and stop-by-PID); the event loop only polls
it, and whatever blocks (start, the final wait, stop) runs in a worker thread.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from contract import chunkindex
from contract.foreign import detect_format
from contract.manifest import MANIFEST, NotMulticastable, multicast_streams
from contract.versions import version_of_link

from server_stub import udpcast
from server_stub.chunkfeed import ChunkFeed, missing_chunks
from server_stub.config import ServerConfig
from server_stub.errors import Conflict, Invalid
from server_stub.store import Store
from server_stub.store.models import Image, InterruptedSession, Session, StorageNode, Task

log = logging.getLogger(__name__)

NEXT_FILE_WAIT = 150     # s a later file's sender waits for the receivers of the previous one; under the
                         # receivers' own 180 s start timeout, so a slow one is waited for, not failed
SENDER_START_TIMEOUT = 120
_RATE = re.compile(r"^(\d+(?:\.\d+)?)([kmg]?)$", re.I)


def parse_rate(text: str | int | None) -> int | None:
    """'200m' → 200000000 bits/s (k, m, g: 10³, 10⁶, 10⁹); None stays None."""
    if text is None or text == "":
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = _RATE.match(str(text).strip())
        if not m:
            raise Invalid(f"rate {text!r}: bits per second like 200m, 1g or 500000")
        value = int(float(m.group(1)) * {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m.group(2).lower()])
    if value < 100_000:
        raise Invalid(f"rate {text!r} is below 100 kbit/s")
    return value


def image_files(manifest: dict) -> list[str]:
    """The streams a multicast of this manifest sends (contract.manifest decides the order)."""
    try:
        return multicast_streams(manifest)
    except NotMulticastable as exc:
        raise Invalid(str(exc)) from None


def is_chunked(name: str) -> bool:
    """A session's file that is a chunk index: its stream is assembled from the node's chunk store."""
    return name.endswith(chunkindex.INDEX_SUFFIX)


def node_root(image_dir: str) -> str:
    """The node's directory an image version lives in: ``<root>/.images/<version>``."""
    return os.path.dirname(os.path.dirname(image_dir))


def check_chunked(image_dir: str, files: list[str]) -> None:
    """Every index the session would send is whole and every chunk it names is in the store: a session that
    would stop half-way is refused before any machine is queued."""
    for name in filter(is_chunked, files):
        try:
            index = chunkindex.read(os.path.join(image_dir, name))
        except (OSError, chunkindex.IndexError_) as exc:
            raise Invalid(f"{os.path.basename(image_dir)}: {exc}; run imager verify on the image") from None
        missing = missing_chunks(node_root(image_dir), index)
        if missing:
            raise Invalid(f"{os.path.basename(image_dir)}: {name} names chunks the store lacks "
                           f"({', '.join(missing)}); run imager verify on the image")


def local_image(store: Store, image: Image) -> tuple[StorageNode, str, str]:
    """(node, version directory, version) of the image's current version on a node this server reaches as a
    local directory (its --rsync-target): udp-sender reads the files from there."""
    if not image["captured"]:
        raise Conflict(f"image {image['name']} has never been captured; nothing to send")
    names = [image["storage"]] + [n for n in image["replicas"] if n != image["storage"]]
    for name in names:
        node = store.storage(name)
        target = node.get("rsync_target") or ""
        if not target.startswith("/"):
            continue
        link = os.path.join(target, image["name"])
        foreign = detect_format(link) if os.path.isdir(link) and not os.path.islink(link) else None
        if foreign:
            raise Conflict(f"image {image['name']} is a {foreign} image read as it lies ({link}); multicast sends "
                           "images imager captured. Deploy it by unicast, or capture it once with imager")
        try:
            pointed = os.readlink(link)
        except OSError:
            continue
        version = version_of_link(image["name"], pointed)
        if version and os.path.isfile(os.path.join(target, pointed, MANIFEST)):
            return node, os.path.join(target, pointed), version
    raise Conflict(f"no node holding image {image['name']} is a directory on this server: give its node a "
                      "local --rsync-target (imager-server storage set NODE --rsync-target /path/of/the/export)")


async def _ip_json(*args: str) -> list[dict[str, Any]]:
    """``ip -j ARGS`` parsed, off the event loop (an asyncio subprocess); [] when ip fails or says nothing."""
    try:
        proc = await asyncio.create_subprocess_exec("ip", "-j", *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)
    except OSError:
        return []
    out, _ = await proc.communicate()
    try:
        found = json.loads(out or b"[]")
    except ValueError:
        return []
    return found if isinstance(found, list) else []


async def interface_address(interface: str) -> str | None:
    """The interface's IPv4 address (what clients give udp-receiver as --mcast-rdv-address)."""
    for link in await _ip_json("-4", "addr", "show", "dev", interface):
        for addr in link.get("addr_info", []):
            return addr.get("local")
    return None


async def interface_for(address: str) -> str | None:
    """The interface holding ``address`` (the server's --bind), or the default route's."""
    if address not in ("", "0.0.0.0"):
        for link in await _ip_json("-4", "addr", "show"):
            if any(a.get("local") == address for a in link.get("addr_info", [])):
                return link.get("ifname")
    routes = await _ip_json("-4", "route", "show", "default")
    return routes[0].get("dev") if routes else None


class MulticastManager:
    """Runs every active session of the server inside its event loop."""

    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store = store
        self.config = config
        self.runs: dict[int, asyncio.Task] = {}
        self.senders: dict[int, udpcast.SenderProcess] = {}
        self.log_dir = Path(config.data_dir) / "multicast"
        self.program = udpcast.UDP_SENDER

    # --- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        for row in self.store.multicast_interrupted():
            self._kill_orphan(row)
            log.warning("multicast session %d was sending when the server stopped: failed", row["id"])
        for session_id in self.store.waiting_sessions():
            self._launch(session_id)

    async def close(self) -> None:
        runs = list(self.runs.values())
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    def _kill_orphan(self, row: InterruptedSession) -> None:
        """A sender left by a server that died (SIGKILL, power): ours only if its command line names our file."""
        pid = row.get("sender_pid")
        if not pid:
            return
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return
        image_dir = row["image_dir"].encode()
        try:  # a chunked file's sender reads stdin and runs in the image's directory (_send)
            cwd = os.readlink(f"/proc/{pid}/cwd").encode()
        except OSError:
            cwd = b""
        if argv and argv[0].endswith(b"udp-sender") and (cwd == image_dir or any(a.startswith(image_dir)
                                                                                 for a in argv)):
            log.warning("stopping udp-sender %d left by the previous server", pid)
            os.kill(pid, signal.SIGKILL)

    # --- commands -----------------------------------------------------------
    async def create(self, image_name: str, hosts: list[str], *, min_receivers: int | None = None,
                     max_wait: int = 300, rate: str | int | None = None, interface: str | None = None,
                     disk: str | None = None, after: str = "reboot", queued_by: str | None = None) -> Session:
        image = self.store.image(image_name)
        node, image_dir, version = local_image(self.store, image)
        files = image_files(json.loads(Path(image_dir, MANIFEST).read_text()))
        await asyncio.to_thread(check_chunked, image_dir, files)
        interface = interface or await interface_for(self.config.bind)
        if interface is None:
            raise Invalid("no network interface for udp-sender: give --interface")
        try:  # the same checks udp-sender's command line gets
            udpcast.sender_argv(udpcast.SenderOptions(interface=interface, min_receivers=1,
                                                      max_bitrate=parse_rate(rate)))
        except udpcast.UdpcastError as exc:
            raise Invalid(str(exc)) from None
        session = self.store.add_session(image, hosts, min_receivers=min_receivers, max_wait=max_wait,
                                         rate=parse_rate(rate), interface=interface, image_dir=image_dir,
                                         version=version, files=files, storage_id=node["id"], disk=disk, after=after,
                                         queued_by=queued_by)
        self._launch(session["id"])
        return session

    def go(self, session_id: int) -> Session:
        return self.store.multicast_go(session_id)

    async def cancel(self, session_id: int) -> Session:
        self.store.multicast_end(session_id, "canceled", "canceled by an admin")
        run = self.runs.get(session_id)
        if run is not None:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
        return self.store.session(session_id)

    async def checkin(self, task: Task, address: str | None) -> tuple[Task, dict[str, Any]]:
        task, answer = self.store.multicast_checkin(task, address)
        answer["sender"] = await self._rdv_address(answer["session"])
        return task, answer

    async def ready(self, task_id: int) -> dict[str, Any]:
        answer = self.store.multicast_ready(task_id)
        answer["sender"] = await self._rdv_address(answer["session"])
        return answer

    async def _rdv_address(self, session_id: int) -> str | None:
        interface = self.store.session(session_id)["interface"]  # create() always records one
        return await interface_address(interface) if interface else None

    # --- the session --------------------------------------------------------
    def _launch(self, session_id: int) -> None:
        self.runs[session_id] = asyncio.get_running_loop().create_task(self._run(session_id))
        self.runs[session_id].add_done_callback(lambda _t: self.runs.pop(session_id, None))

    async def _run(self, session_id: int) -> None:
        try:
            if not await self._wait_for_receivers(session_id):
                return
            receivers = self.store.multicast_sending(session_id)
            session = self.store.session(session_id)
            log.info("multicast session %d: sending %d files to %d clients", session_id, len(session["files"]),
                     len(receivers))
            count = len(receivers)
            for i, name in enumerate(session["files"]):
                result, feed_error = await self._send(session, i, name, count, max_wait=NEXT_FILE_WAIT)
                for address in result.dropped:
                    self.store.multicast_drop(session_id, address, f"dropped by udp-sender during {name}: "
                                              f"no answer to {udpcast.SenderOptions.retries_until_drop} requests")
                if not result.ok or feed_error:
                    self.store.multicast_sender(session_id, None, None)
                    self.store.multicast_end(session_id, "failed", feed_error or f"{name}: {result.status}")
                    log.warning("multicast session %d failed at %s: %s", session_id, name, result.status)
                    return
                count = len(result.receivers) - len(result.dropped)
            self.store.multicast_sender(session_id, None, None)
            self.store.multicast_end(session_id, "done")
            log.info("multicast session %d: every file sent", session_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a session must end in a state an admin sees, whatever happened
            log.exception("multicast session %d", session_id)
            try:
                self.store.multicast_end(session_id, "failed", f"internal error: {exc!r}")
            except Conflict:
                pass

    async def _wait_for_receivers(self, session_id: int) -> bool:
        """True when the session should start: min_receivers ready, or max_wait after the first ready one, or
        'go' with at least one ready. False when it ended meanwhile (canceled)."""
        while True:
            session = self.store.session(session_id)
            if session["state"] != "waiting":
                return False
            ready = sum(c["state"] == "ready" and c["task_state"] == "running" for c in session["clients"])
            waited = time.time() - session["first_ready"] if session["first_ready"] else 0
            if ready and (ready >= session["min_receivers"] or session["go"] or waited >= session["max_wait"]):
                return True
            await asyncio.sleep(0.5)

    async def _send(self, session: Session, index: int, name: str, receivers: int,
                    max_wait: int) -> tuple[udpcast.SenderResult, str | None]:
        """One file's udp-sender to its end; (its result, why a chunked stream stopped short or None)."""
        options = udpcast.SenderOptions(portbase=session["portbase"] + 2 * index, interface=session["interface"],
                                        min_receivers=max(1, receivers), max_wait=max_wait,
                                        start_timeout=SENDER_START_TIMEOUT, max_bitrate=session["rate"])
        image_dir = session["image_dir"]
        feed = None
        if is_chunked(name):  # udp-sender reads stdin, which our writer thread fills from the chunk store
            try:
                feed = await asyncio.to_thread(ChunkFeed.open, node_root(image_dir), os.path.join(image_dir, name))
            except (OSError, chunkindex.IndexError_) as exc:   # removed or damaged since the session was created
                return udpcast.SenderResult(), f"{name} cannot be sent: {exc}"
        argv = udpcast.sender_argv(options, None if feed else Path(image_dir) / name, program=self.program)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        sender = udpcast.SenderProcess(argv, stderr_log=self.log_dir / f"session{session['id']}.log",
                                       stdin=feed.read_fd if feed else None, cwd=image_dir)
        try:
            await asyncio.to_thread(sender.start)
        except BaseException:
            if feed:
                feed.close()
            raise
        if feed:
            feed.start()
        self.senders[session["id"]] = sender
        self.store.multicast_sender(session["id"], name, sender.pid, f"file {index + 1}/{len(session['files'])}")
        log.info("multicast session %d: udp-sender %d for %s (%d receivers)", session["id"], sender.pid, name,
                 receivers)
        try:
            while await asyncio.to_thread(sender.running):
                await asyncio.sleep(0.5)
                r = sender.result()
                self.store.multicast_sender(session["id"], name, sender.pid,
                                            f"file {index + 1}/{len(session['files'])}: {r.bytes_sent} bytes, "
                                            f"{len(r.receivers) - len(r.dropped)} receivers")
            result = await asyncio.to_thread(sender.wait)
            return result, feed.error if feed else None
        finally:
            # canceled, or the server stops: never leave a udp-sender behind (a no-op once it ended), then
            # the chunk writer, whose pipe has no reader any more
            await asyncio.shield(asyncio.to_thread(sender.stop))
            if feed:
                await asyncio.shield(asyncio.to_thread(feed.close))
            self.senders.pop(session["id"], None)

