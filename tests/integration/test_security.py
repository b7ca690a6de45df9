"""Startup kits and CurveZMQ over real sockets on 127.0.0.1: who may join, under which
name, what a recorded session is worth to an attacker, and where plaintext is allowed."""

import dataclasses
import ipaddress
import json
import logging
import os
import re
import select
import socket
import stat
import subprocess
import sys
import threading
import types

import numpy as np
import pytest
import zmq

import nbfl
from nbfl.transport.provision import ProvisionError, load_kit, provision
from nbfl.transport.threads import InsecureTransportError, is_loopback

from helpers import FAST, free_port, small_model

NBFL = [sys.executable, "-m", "nbfl"]


def write_project(path, clients=("site-1", "site-2"), port=None, **extra) -> str:
    lines = ['name = "study"', 'host = "127.0.0.1"', f"port = {port or free_port()}", f"clients = {list(clients)!r}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path.write_text("\n".join(lines).replace("'", '"') + "\n")
    return str(path)


@pytest.fixture
def kits(tmp_path):
    return provision(write_project(tmp_path / "study.toml"), tmp_path / "kits")


@pytest.fixture
def closing():
    """Controllers and clients to close after the test, whatever happens."""
    made: list = []
    yield made
    for thing in reversed(made):
        thing.stop() if isinstance(thing, nbfl.Client) else thing.close()


def adder(delta, samples=1):
    def train(weights, ctx):
        return nbfl.Update({k: v + delta for k, v in weights.items()}, num_samples=samples)

    return {"train": train}


def controller(closing, *args, **kwargs) -> nbfl.Controller:
    ctl = nbfl.Controller(*args, **{**FAST, **kwargs})
    closing.append(ctl)
    return ctl


def client(closing, *args, wait=30, **kwargs) -> nbfl.Client:
    c = nbfl.Client(*args, **{**FAST, **kwargs})
    closing.append(c)
    return c.start(wait=wait)


# -- provisioning -------------------------------------------------------------------
def test_kits_hold_only_their_own_secret_with_mode_0600(kits):
    ctl = load_kit(kits["controller"])
    sites = {name: load_kit(kits[name]) for name in ("site-1", "site-2")}
    for folder in kits.values():
        assert stat.S_IMODE(os.stat(folder / "secret.key").st_mode) == 0o600
    assert sorted(os.listdir(kits["controller"])) == ["kit.json", "secret.key"]
    controller_files = b"".join((kits["controller"] / f).read_bytes() for f in os.listdir(kits["controller"]))
    for name, kit in sites.items():
        assert kit.secret_key not in controller_files  # no client secret in the controller's kit
        assert ctl.allowed_clients[kit.public_key] == name
        assert kit.controller_key == ctl.public_key and kit.endpoint == ctl.endpoint and kit.role == "client"
        assert zmq.curve_public(kit.secret_key) == kit.public_key
    assert sites["site-1"].secret_key not in (kits["site-2"] / "secret.key").read_bytes()
    assert ctl.secret_key not in (kits["site-1"] / "kit.json").read_bytes()


@pytest.mark.parametrize(
    "text, message",
    [
        ('name = "s"\nhost = "127.0.0.1"\nport = 5555\nclients = []\n', "non-empty list"),
        ('name = "s"\nhost = "127.0.0.1"\nport = 70000\nclients = ["a"]\n', "port"),
        ('name = "s"\nhost = "127.0.0.1"\nport = 5555\nclients = ["a", "a"]\n', "unique"),
        ('name = "s"\nhost = "127.0.0.1"\nport = 5555\nclients = ["../x"]\n', "client names"),
        ('name = "s"\nhost = "127.0.0.1"\nport = 5555\nclients = ["controller"]\n', "client names"),
        ('name = "s"\nhost = "127.0.0.1"\nport = 5555\nclients = ["a"]\nhe = "yes"\n', "he must be"),
        ("name = ", "not valid TOML"),
    ],
)
def test_bad_project_files_are_refused(tmp_path, text, message):
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(ProvisionError, match=message):
        provision(tmp_path / "p.toml", tmp_path / "kits")
    assert not (tmp_path / "kits").exists()


def test_provision_does_not_overwrite_kits(tmp_path, kits):
    with pytest.raises(ProvisionError, match="already exist"):
        provision(tmp_path / "study.toml", tmp_path / "kits")


def test_he_contexts_are_made_once_and_shared(tmp_path, monkeypatch):
    calls = []

    def new_contexts():
        calls.append(1)
        return b"public context", b"full context with secret key"

    monkeypatch.setitem(sys.modules, "nbfl.protocol.he", types.SimpleNamespace(new_contexts=new_contexts))
    kits = provision(write_project(tmp_path / "p.toml", he=True), tmp_path / "kits")
    assert len(calls) == 1
    assert load_kit(kits["controller"]).he_context() == b"public context"
    for name in ("site-1", "site-2"):
        assert load_kit(kits[name]).he_context() == b"full context with secret key"
        assert stat.S_IMODE(os.stat(kits[name] / "he_secret.ctx").st_mode) == 0o600
    assert not (kits["controller"] / "he_secret.ctx").exists()


def test_he_kits_with_tenseal(tmp_path):
    ts = pytest.importorskip("tenseal")
    kits = provision(write_project(tmp_path / "p.toml", he=True), tmp_path / "kits")
    public = ts.context_from(load_kit(kits["controller"]).he_context())
    full = [load_kit(kits[name]).he_context() for name in ("site-1", "site-2")]
    assert not public.is_private() and ts.context_from(full[0]).is_private() and full[0] == full[1]


def test_he_without_its_module_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nbfl.protocol.he", None)  # as if the module or TenSEAL were missing
    with pytest.raises(ProvisionError, match="TenSEAL"):
        provision(write_project(tmp_path / "p.toml", he=True), tmp_path / "kits")


def test_a_kit_whose_secret_does_not_match_is_refused(kits):
    (kits["site-1"] / "secret.key").write_bytes((kits["site-2"] / "secret.key").read_bytes())
    with pytest.raises(ProvisionError, match="does not belong"):
        load_kit(kits["site-1"])
    with pytest.raises(ProvisionError, match="controller's kit"):
        nbfl.Client(kit=kits["controller"])


# -- CurveZMQ -----------------------------------------------------------------------
def test_kits_run_a_fedavg_round_under_their_names(kits, closing):
    w0 = small_model()
    ctl = controller(closing, weights=w0, kit=kits["controller"])
    assert ctl.endpoint == load_kit(kits["controller"]).endpoint
    assert "CurveZMQ" in ctl.security and "2 client keys" in ctl.security and "unencrypted" not in ctl.security
    client(closing, kit=kits["site-1"], tasks=adder(1.0, 1))
    client(closing, kit=kits["site-2"], tasks=adder(4.0, 3))
    record = ctl.run(1, min_clients=2, timeout=60, join_timeout=60)[0]
    assert record.status == "ok" and sorted(record.clients) == ["site-1", "site-2"]
    np.testing.assert_allclose(ctl.weights["w"], w0["w"] + 3.25, rtol=1e-6)  # (1*1 + 3*4) / 4
    assert sorted(c.name for c in ctl.clients) == ["site-1", "site-2"]


def test_the_zap_handler_answers_malformed_requests_and_carries_on(kits, closing):
    """ZAP requests come from libzmq, but a bug in judging one must not end the IO thread
    (or leave its REP socket waiting for an answer it never sent)."""
    ctl = controller(closing, weights=small_model(), kit=kits["controller"])
    zap = ctl.io._context.socket(zmq.REQ)  # the handler serves its own context's inproc endpoint
    zap.setsockopt(zmq.LINGER, 0)
    zap.setsockopt(zmq.RCVTIMEO, 10_000)
    zap.connect("inproc://zeromq.zap.01")
    key = load_kit(kits["site-1"]).public_key
    malformed = [
        [b"1.0"],
        [b"1.0", b"id", b"nbfl", b"\xff\xfe", b"", b"CURVE", b"short key"],
        [b"9.9", b"id", b"nbfl", b"127.0.0.1", b"", b"CURVE", zmq.utils.z85.decode(key)],
        [b"1.0", b"id", b"nbfl", b"127.0.0.1", b"", b"PLAIN", b"user", b"password"],
    ]
    try:
        for request in malformed:
            zap.send_multipart(request)
            reply = zap.recv_multipart()
            assert reply[0] == b"1.0" and reply[2] in (b"400", b"500"), reply
        zap.send_multipart([b"1.0", b"ok", b"nbfl", b"127.0.0.1", b"", b"CURVE", zmq.utils.z85.decode(key)])
        assert zap.recv_multipart()[2:5] == [b"200", b"OK", b"site-1"]  # a listed key still passes
    finally:
        zap.close()
    client(closing, kit=kits["site-1"], tasks=adder(1.0))
    assert ctl.run(1, timeout=60)[0].status == "ok" and ctl.io.is_alive()


def test_a_key_the_kit_does_not_list_is_refused(tmp_path, kits, closing, caplog):
    ctl = controller(closing, weights=small_model(), kit=kits["controller"])
    other = provision(write_project(tmp_path / "other.toml", clients=["eve"]), tmp_path / "other")
    # eve knows the controller's public key and address; only her own key is not listed
    eve = dataclasses.replace(load_kit(other["eve"]), controller_key=ctl.kit.public_key, endpoint=ctl.endpoint)
    with caplog.at_level(logging.WARNING, logger="nbfl.transport.threads"):
        with pytest.raises(ConnectionError, match="not in the controller's kit"):
            client(closing, kit=eve, tasks=adder(1.0))
    assert ctl.clients == []
    assert any(eve.public_key.decode() in r.getMessage() for r in caplog.records)
    client(closing, kit=kits["site-1"], tasks=adder(1.0))  # a listed key still gets in
    assert [c.name for c in ctl.clients] == ["site-1"]


def test_a_wrong_controller_key_fails_the_handshake(kits, closing):
    ctl = controller(closing, weights=small_model(), kit=kits["controller"])
    wrong = dataclasses.replace(load_kit(kits["site-1"]), controller_key=zmq.curve_keypair()[0])
    with pytest.raises(ConnectionError, match="controller.s public key in this startup kit does not match"):
        client(closing, ctl.endpoint, kit=wrong, tasks=adder(1.0))
    assert ctl.clients == []


def test_a_plaintext_client_is_told_the_controller_needs_a_kit(kits, closing):
    ctl = controller(closing, weights=small_model(), kit=kits["controller"])
    with pytest.raises(ConnectionError, match="requires CurveZMQ"):
        client(closing, ctl.endpoint, "site-1", tasks=adder(1.0))
    assert ctl.clients == []


def test_the_key_decides_the_name_not_the_join_message(kits, closing, caplog):
    ctl = controller(closing, weights=small_model(), kit=kits["controller"])
    real = client(closing, kit=kits["site-2"], tasks=adder(1.0))
    with caplog.at_level(logging.WARNING, logger="nbfl.controller.controller"):
        impostor = client(closing, None, "site-2", kit=kits["site-1"], tasks=adder(100.0))  # claims site-2
    assert "joined as 'site-2'; it is listed as 'site-1'" in caplog.text
    assert sorted(c.name for c in ctl.clients) == ["site-1", "site-2"]
    assert impostor.name == "site-1" and real.name == "site-2"
    assert all(c.live for c in ctl.clients)  # the real site-2 was not displaced


class Relay(threading.Thread):
    """A TCP relay between one client and the controller that records what the client sends."""

    def __init__(self, upstream: str):
        super().__init__(daemon=True)
        host, port = upstream.removeprefix("tcp://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.recorded = bytearray()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        down, _ = self.listener.accept()
        up = socket.create_connection(self.upstream)
        peers = {down: up, up: down}
        with down, up:
            while not self.stopping.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is down:
                        with self.lock:
                            self.recorded += data
                    peers[sock].sendall(data)

    def snapshot(self) -> bytes:
        with self.lock:
            return bytes(self.recorded)


def zmtp_frames(stream: bytes) -> list[bytes]:
    """ZMTP 3 traffic after its 64-byte greeting, split into frames (commands and message parts)."""
    frames, i = [], 64
    while i < len(stream):
        long = stream[i] & 0x02
        head = 9 if long else 2
        size = int.from_bytes(stream[i + 1 : i + head], "big")
        frames.append(stream[i : i + head + size])
        i += head + size
    return frames


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def replay(endpoint: str, recorded: bytes) -> bytes:
    """Play a recorded client session to ``endpoint`` on a new TCP connection, pacing it as a
    client would (greeting in two steps, HELLO, then the rest); return the server's first answer
    to HELLO. Returns when the server hangs up."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    hello, *rest = zmtp_frames(recorded)
    welcome = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(recorded[:10])  # the signature: the server answers with its own
            recv_exactly(sock, 10)
            sock.sendall(recorded[10:64])  # the rest of the greeting: version, mechanism
            recv_exactly(sock, 54)
            sock.sendall(hello)
            welcome = sock.recv(65536)
            sock.sendall(b"".join(rest))  # INITIATE with the old cookie, then the old messages
            while sock.recv(65536):  # until the controller hangs up
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass  # the controller hung up while we were still sending or reading
    return welcome


def test_a_recorded_session_replayed_on_a_new_connection_gets_nowhere(kits, closing, monkeypatch):
    w0 = small_model()
    ctl = controller(closing, weights=w0, kit=kits["controller"])
    relay = Relay(ctl.endpoint)
    relay.start()
    real = client(closing, relay.endpoint, kit=kits["site-1"], tasks=adder(1.0))
    assert ctl.run(1, timeout=60)[0].status == "ok"
    recorded = relay.snapshot()
    assert len(recorded) > 1000
    assert b"join" not in recorded and b"site-1" not in recorded  # the session is encrypted
    assert w0["w"].tobytes() not in recorded and (w0["w"] + 1).tobytes() not in recorded

    seen = []
    handle = ctl.admission._on_message
    monkeypatch.setattr(ctl.admission, "_on_message", lambda peer, msg: (seen.append(msg.kind), handle(peer, msg)))
    registry_before = [(c.name, c.peer, c.state) for c in ctl.clients]
    history_before = len(ctl.history)
    welcome = replay(ctl.endpoint, recorded)
    assert b"WELCOME" in welcome  # a replayed HELLO gets a fresh WELCOME; the old INITIATE's cookie fails
    assert seen == []  # not one message from the replay reached the controller
    assert [(c.name, c.peer, c.state) for c in ctl.clients] == registry_before
    assert len(ctl.history) == history_before

    monkeypatch.undo()
    assert ctl.run(1, timeout=60)[0].status == "ok"  # the controller carries on
    np.testing.assert_allclose(ctl.weights["w"], w0["w"] + 2.0, rtol=1e-6)
    assert real.rounds_done == 2
    relay.stopping.set()


# -- plaintext ----------------------------------------------------------------------
def own_address() -> str | None:
    """This machine's address on a network, if it has one (no packet is sent)."""
    candidates = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: picks the outgoing interface
            candidates.append(s.getsockname()[0])
        except OSError:
            pass
    try:
        candidates.append(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    for ip in candidates:
        address = ipaddress.ip_address(ip)
        if not (address.is_loopback or address.is_unspecified):
            return ip
    return None


def test_loopback_detection():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://127.3.2.1:1") and is_loopback("tcp://localhost:1")
    assert is_loopback("tcp://[::1]:5555") and is_loopback("ipc:///tmp/x") and is_loopback("inproc://x")
    assert not is_loopback("tcp://0.0.0.0:5555") and is_loopback("tcp://0.0.0.0:5555", connect=True)
    assert not is_loopback("tcp://*:5555") and not is_loopback("tcp://10.0.0.5:5555")
    assert not is_loopback("tcp://192.0.2.1:5555", connect=True)


def test_plaintext_off_loopback_needs_insecure(kits, closing):
    host = own_address() or "0.0.0.0"
    with pytest.raises(InsecureTransportError, match="insecure=True"):
        nbfl.Controller(f"tcp://{host}:0", small_model())
    ctl = controller(closing, f"tcp://{host}:0", small_model(), insecure=True)
    assert "unencrypted" in ctl.security
    remote = "tcp://192.0.2.1:5555"  # refused before any connection is tried
    with pytest.raises(InsecureTransportError, match="insecure=True"):
        nbfl.Client(remote, "x")
    nbfl.Client(remote, "x", insecure=True)  # allowed: nothing is sent until start()
    if host != "0.0.0.0":
        with pytest.raises(InsecureTransportError):
            nbfl.Client(ctl.endpoint, "x")
        client(closing, ctl.endpoint, "x", insecure=True, tasks=adder(1.0))
        assert ctl.run(1, timeout=60)[0].status == "ok"
    # a kit needs no flag: the connection is encrypted
    secure = controller(closing, f"tcp://{host}:0", small_model(), kit=kits["controller"])
    assert "CurveZMQ" in secure.security


# -- command line and magics -------------------------------------------------------
def test_provision_controller_and_client_from_the_command_line(tmp_path):
    out = subprocess.run(
        [*NBFL, "provision", write_project(tmp_path / "p.toml", clients=["site-1"]), "--out", str(tmp_path / "kits")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "nbfl client --kit" in out.stdout and "nbfl controller --kit" in out.stdout
    controller = subprocess.Popen(
        [*NBFL, "controller", "--kit", str(tmp_path / "kits" / "controller"), "--min-clients", "1", "--rounds", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert controller.stdout.readline().startswith("controller at tcp://127.0.0.1:")
    assert "CurveZMQ" in controller.stdout.readline()
    site = subprocess.Popen([*NBFL, "client", "--kit", str(tmp_path / "kits" / "site-1")])
    stdout, stderr = controller.communicate(timeout=300)
    assert controller.returncode == 0, stderr
    assert "final accuracy" in stdout
    assert site.wait(timeout=60) == 0


def test_command_line_refuses_plaintext_off_loopback():
    out = subprocess.run(
        [*NBFL, "client", "tcp://192.0.2.1:5555", "--name", "x", "--wait", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "--insecure" in out.stderr


@pytest.fixture
def ip():
    from IPython.testing.globalipapp import start_ipython

    start_ipython()
    from IPython import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "nbfl")
    yield shell
    shell.run_line_magic("unload_ext", "nbfl")


def test_magics_start_and_join_with_kits(ip, kits, monkeypatch):
    from IPython.core.error import UsageError

    from nbfl.notebook.magics import controller, reports

    shown = []
    original = controller.display

    def display(obj, **kwargs):
        shown.append(str(getattr(obj, "data", obj)))
        return original(obj, **kwargs)

    for topic in (controller, reports):  # %fl_controller and %fl_clients show what is asserted
        monkeypatch.setattr(topic, "display", display)

    with pytest.raises(UsageError, match="--insecure"):
        ip.run_line_magic("fl_controller", "start --host 192.0.2.1")
    ip.user_ns["w"] = small_model()
    ip.run_line_magic("fl_controller", f"start --kit {kits['controller']} --model w")
    ctl = ip.user_ns["nbfl_controller"]
    assert "CurveZMQ" in ctl.security and ctl.endpoint == load_kit(kits["controller"]).endpoint
    assert "%fl_join --kit" in shown[-1] and "2 client keys" in shown[-1] and "unencrypted" not in shown[-1]
    with pytest.raises(UsageError, match="no startup kit"):
        ip.run_line_magic("fl_spawn", "1")
    ip.run_cell("import nbfl\n@nbfl.task('train')\ndef train(w, ctx):\n    return {k: v + 1 for k, v in w.items()}\n")
    ip.run_line_magic("fl_join", f"--kit {kits['site-1']} --data none")
    try:
        assert [c.name for c in ctl.clients] == ["site-1"]
        ctl.run(1, timeout=60)
        np.testing.assert_allclose(ctl.weights["b"], small_model()["b"] + 1, rtol=1e-6)
        ip.run_line_magic("fl_clients", "")
        assert "CurveZMQ" in shown[-1] and "site-1" in shown[-1] and "unencrypted" not in shown[-1]
    finally:
        ip.user_ns["nbfl_client"].stop()
        ip.run_line_magic("fl_controller", "stop")
    with pytest.raises(UsageError, match="--insecure"):
        ip.run_line_magic("fl_join", "tcp://192.0.2.1:5555 --name x --data none")


def test_a_he_project_runs_encrypted_from_the_command_line(tmp_path):
    pytest.importorskip("tenseal")
    project = write_project(tmp_path / "p.toml", clients=["site-1", "site-2"], he=True)
    assert subprocess.run([*NBFL, "provision", project, "--out", str(tmp_path / "kits")], timeout=120).returncode == 0
    controller = subprocess.Popen(
        [*NBFL, "controller", "--kit", str(tmp_path / "kits" / "controller"), "--min-clients", "2", "--rounds", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sites = [
        subprocess.Popen(
            [
                *NBFL,
                "client",
                "--kit",
                str(tmp_path / "kits" / f"site-{i + 1}"),
                "--index",
                str(i),
                "--num-clients",
                "2",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    stdout, stderr = controller.communicate(timeout=300)
    assert controller.returncode == 0, stderr
    assert "homomorphic encryption" in stdout and "(he_fedavg)" in stdout
    final = float(re.search(r"2 rounds completed; final accuracy ([\d.]+)", stdout).group(1))
    assert final > 0.5  # the clients' own accuracy of the model they decrypted
    for site in sites:
        out, _ = site.communicate(timeout=60)
        assert site.returncode == 0 and "joined tcp://127.0.0.1:" in out


def test_a_controller_with_a_kit_refuses_clients_hosted_behind_one_key(kits, closing):
    """A kit's key names one participant: a connection that would carry several hosted
    clients (nbfl.participant.host) is not listened to, however valid its key."""
    from nbfl.transport.provision import as_kit
    from nbfl.transport.threads import SharedConnection

    ctl = controller(closing, weights=small_model(), kit=kits["controller"])
    site = as_kit(kits["site-1"], "client")
    shared = SharedConnection(site.endpoint, curve=site.curve(), **FAST)
    shared.start()
    try:
        hosted = nbfl.Client(site.endpoint, "site-1", link=lambda handler: shared.link(b"1", handler), tasks=adder(1))
        with pytest.raises(ConnectionError, match="not welcomed"):
            hosted.start(wait=3)
        assert ctl.clients == [] and ctl.defense()["refused_messages"] >= 1
    finally:
        shared.stop()
