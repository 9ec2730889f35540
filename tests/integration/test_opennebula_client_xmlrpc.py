"""OneClient through a real socket: a stdlib XML-RPC server on loopback answering like oned 3.x."""

from __future__ import annotations

import logging
import socket
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest

from upgrader.errors import (
    ConfigError,
    OneApiError,
    OneArgumentError,
    OneAuthError,
    OneInternalError,
    OneMethodMissingError,
    OneNotFoundError,
    OneResponseError,
    OneStateError,
    OneUnavailableError,
    UpgraderError,
)
from upgrader.opennebula import HostState, OneClient, OneVersion, Secret, VmState

PASSWORD = "Pa55-w0rd-never-shown"
SESSION = f"oneadmin:{PASSWORD}"
READ_ONLY = {
    "one.system.version",
    "one.datastorepool.info",
    "one.vmpool.accounting",
    "one.hostpool.info",
    "one.vmpool.info",
}

# --- recorded documents (opennebula-3x.md section 2), compact like oned writes them -------------

SHARE = (
    "<HOST_SHARE>"
    + "".join(
        f"<{name}>{value}</{name}>"
        for name, value in (
            ("DISK_USAGE", 0),
            ("MEM_USAGE", 524288),
            ("CPU_USAGE", 100),
            ("MAX_DISK", 0),
            ("MAX_MEM", 16777216),
            ("MAX_CPU", 800),
            ("FREE_DISK", 0),
            ("FREE_MEM", 16777216),
            ("FREE_CPU", 800),
            ("USED_DISK", 0),
            ("USED_MEM", 0),
            ("USED_CPU", 0),
            ("RUNNING_VMS", 1),
        )
    )
    + "</HOST_SHARE>"
)
PROBES = "<TEMPLATE><HOSTNAME><![CDATA[node01]]></HOSTNAME></TEMPLATE>"
HOST_HEAD = (
    "<HOST><ID>0</ID><NAME>node01</NAME><STATE>2</STATE><IM_MAD>im_dummy</IM_MAD>"
    "<VM_MAD>vmm_dummy</VM_MAD><VN_MAD>dummy</VN_MAD>"
)
HOSTS = {
    "3.2": HOST_HEAD
    + "<TM_MAD>tm_shared</TM_MAD><LAST_MON_TIME>1</LAST_MON_TIME>"
    + SHARE
    + PROBES
    + "</HOST>",
    "3.4": HOST_HEAD + "<LAST_MON_TIME>1</LAST_MON_TIME><CLUSTER_ID>100</CLUSTER_ID>"
    "<CLUSTER>production</CLUSTER>" + SHARE + PROBES + "</HOST>",
    # 3.6 right after onedb: CLUSTER_ID/CLUSTER appended at the end.
    "3.6": HOST_HEAD
    + "<LAST_MON_TIME>1</LAST_MON_TIME>"
    + SHARE
    + "<TEMPLATE/><CLUSTER_ID>-1</CLUSTER_ID><CLUSTER/></HOST>",
}

VM_HEAD = (
    "<VM><ID>7</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>"
    "<NAME>web01</NAME><LAST_POLL>1</LAST_POLL><STATE>3</STATE><LCM_STATE>3</LCM_STATE>"
)
VM_BODY = (
    "<STIME>1</STIME><ETIME>0</ETIME><DEPLOY_ID>one-7</DEPLOY_ID><MEMORY>0</MEMORY><CPU>0</CPU>"
    "<NET_TX>0</NET_TX><NET_RX>0</NET_RX><TEMPLATE><DISK><TARGET><![CDATA[hda]]></TARGET></DISK>"
    "</TEMPLATE>"
)
HISTORY = (
    "<HISTORY>{oid}<SEQ>0</SEQ><HOSTNAME>node01</HOSTNAME>{vm_dir}<HID>1</HID><STIME>1</STIME>"
    "<ETIME>0</ETIME><VMMMAD>vmm_dummy</VMMMAD><VNMMAD>dummy</VNMMAD>{tm}<PSTIME>1</PSTIME>"
    "<PETIME>2</PETIME><RSTIME>2</RSTIME><RETIME>0</RETIME><ESTIME>0</ESTIME><EETIME>0</EETIME>"
    "<REASON>0</REASON></HISTORY>"
)
VMS = {
    "3.2": VM_HEAD
    + VM_BODY
    + "<HISTORY_RECORDS>"
    + HISTORY.format(oid="", vm_dir="<VM_DIR>/var/lib/one/</VM_DIR>", tm="<TMMAD>tm_shared</TMMAD>")
    + "</HISTORY_RECORDS></VM>",
    "3.4": VM_HEAD
    + VM_BODY
    + "<HISTORY_RECORDS>"
    + HISTORY.format(oid="", vm_dir="", tm="")
    + "</HISTORY_RECORDS></VM>",
    "3.6": VM_HEAD
    + "<RESCHED>0</RESCHED>"
    + VM_BODY
    + "<HISTORY_RECORDS>"
    + HISTORY.format(oid="<OID>7</OID>", vm_dir="", tm="<TMMAD>shared</TMMAD><DS_ID>0</DS_ID>")
    + "</HISTORY_RECORDS></VM>",
}
DATASTORE_POOL = (
    "<DATASTORE_POOL><DATASTORE><ID>1</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME>"
    "<GNAME>oneadmin</GNAME><NAME>default</NAME><DS_MAD>fs</DS_MAD><TM_MAD>shared</TM_MAD>"
    "<BASE_PATH>/var/lib/one/datastores/1</BASE_PATH><SYSTEM>0</SYSTEM><DISK_TYPE>0</DISK_TYPE>"
    "<CLUSTER_ID>-1</CLUSTER_ID><CLUSTER/><IMAGES><ID>3</ID></IMAGES><TEMPLATE/></DATASTORE>"
    "</DATASTORE_POOL>"
)
CLUSTER_POOL = (
    "<CLUSTER_POOL><CLUSTER><ID>100</ID><NAME>production</NAME><HOSTS><ID>0</ID></HOSTS>"
    "<DATASTORES/><VNETS/><TEMPLATE/></CLUSTER></CLUSTER_POOL>"
)
IMAGE = (
    "<IMAGE><ID>3</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>"
    "<NAME>ubuntu</NAME><TYPE>0</TYPE><DISK_TYPE>0</DISK_TYPE><PERSISTENT>0</PERSISTENT>"
    "<REGTIME>1</REGTIME><SOURCE>/var/lib/one/datastores/1/abc</SOURCE><PATH>/srv/u.img</PATH>"
    "<FSTYPE/><SIZE>2048</SIZE><STATE>1</STATE><RUNNING_VMS>0</RUNNING_VMS>"
    "<CLONING_OPS>0</CLONING_OPS><CLONING_ID>-1</CLONING_ID><DATASTORE_ID>1</DATASTORE_ID>"
    "<DATASTORE>default</DATASTORE><TEMPLATE/></IMAGE>"
)
USER_POOL = (
    "<USER_POOL><USER><ID>0</ID><GID>0</GID><GNAME>oneadmin</GNAME><NAME>oneadmin</NAME>"
    "<PASSWORD>x</PASSWORD><AUTH_DRIVER>core</AUTH_DRIVER><ENABLED>1</ENABLED><TEMPLATE/></USER>"
    "</USER_POOL>"
)
GROUP_POOL = (
    "<GROUP_POOL><GROUP><ID>0</ID><NAME>oneadmin</NAME><USERS><ID>0</ID></USERS></GROUP>"
    "</GROUP_POOL>"
)


def ok(body: object) -> Callable[..., list[Any]]:
    """A method that answers [true, body, 0] whatever its arguments."""
    return lambda *params: [True, body, 0]


def methods_of(version: str, *, hosts: str | None = None, vms: str | None = None) -> dict[str, Any]:
    """The read methods of a 3.x oned with one host and one VM in ``version`` layout."""
    methods: dict[str, Any] = {
        "one.hostpool.info": ok(
            f"<HOST_POOL>{HOSTS[version] if hosts is None else hosts}</HOST_POOL>"
        ),
        "one.host.info": ok(HOSTS[version]),
        "one.vmpool.info": ok(f"<VM_POOL>{VMS[version] if vms is None else vms}</VM_POOL>"),
        "one.vm.info": ok(VMS[version]),
        "one.imagepool.info": ok(f"<IMAGE_POOL>{IMAGE}</IMAGE_POOL>"),
        "one.image.info": ok(IMAGE),
        "one.userpool.info": ok(USER_POOL),
        "one.grouppool.info": ok(GROUP_POOL),
        "one.host.enable": ok(0),  # a write method: detection must never call it
    }
    if version in ("3.4", "3.6"):
        methods["one.datastorepool.info"] = ok(DATASTORE_POOL)
        methods["one.clusterpool.info"] = ok(CLUSTER_POOL)
    if version == "3.6":
        methods["one.vmpool.accounting"] = ok("<HISTORY_RECORDS/>")
    return methods


# --- the loopback oned -------------------------------------------------------------------------


class FakeOned:
    """Dispatches to ``methods``; unknown methods get the fault xmlrpc-c gives (-506)."""

    def __init__(self) -> None:
        self.methods: dict[str, Any] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.url = ""

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> Any:
        self.calls.append((method, params))
        if method not in self.methods:
            # SimpleXMLRPCServer's own "not supported" fault has code 1, not xmlrpc-c's -506.
            raise xmlrpc.client.Fault(-506, f"Method '{method}' not defined")
        return self.methods[method](*params)


class Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)

    def do_POST(self) -> None:
        if self.path == "/garbage":
            body = b"<html>this is not XML-RPC"
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_POST()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def oned() -> Iterator[FakeOned]:
    fake = FakeOned()
    server = SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=Handler, logRequests=False)
    server.register_instance(fake)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def client(oned: FakeOned) -> OneClient:
    return OneClient(f"{oned.url}/RPC2", Secret(SESSION), timeout=5)


@pytest.fixture(autouse=True)
def no_session_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
    assert PASSWORD not in caplog.text


def expect(
    error: type[UpgraderError], call: Callable[..., object], *args: object, **kwargs: object
) -> Any:
    """Run ``call``; check it raises ``error`` and that no part of the error shows the session."""
    with pytest.raises(error) as caught:
        call(*args, **kwargs)
    exc: BaseException | None = caught.value
    while exc is not None:
        for text in (str(exc), repr(exc), str(getattr(exc, "hint", ""))):
            assert PASSWORD not in text
        exc = exc.__cause__ or exc.__context__
    return caught.value


# --- calls and models ----------------------------------------------------------------------------


def test_pool_and_info_calls_return_models_and_send_the_session_first(
    oned: FakeOned, client: OneClient, caplog: pytest.LogCaptureFixture
) -> None:
    oned.methods = methods_of("3.4")
    (host,) = client.host_pool()
    assert (host.id, host.state, host.cluster, host.tm_mad) == (
        0,
        HostState.MONITORED,
        "production",
        None,
    )
    assert client.host(0) == host
    (vm,) = client.vm_pool()
    assert (vm.id, vm.state, vm.host, vm.host_id, vm.disks[0]["TARGET"]) == (
        7,
        VmState.ACTIVE,
        "node01",
        1,
        "hda",
    )
    assert client.vm(7) == vm
    assert oned.calls == [
        ("one.hostpool.info", (SESSION,)),
        ("one.host.info", (SESSION, 0)),
        ("one.vmpool.info", (SESSION, -2, -1, -1, -1)),
        ("one.vm.info", (SESSION, 7)),
    ]
    assert "[one] one.hostpool.info ok in" in caplog.text  # so the no-session check sees calls


def test_vm_pool_passes_its_filter(oned: FakeOned, client: OneClient) -> None:
    oned.methods = methods_of("3.2")
    client.vm_pool(filter_flag=-3, start=5, end=10, state=3)
    assert oned.calls[-1] == ("one.vmpool.info", (SESSION, -3, 5, 10, 3))


def test_every_typed_call_against_a_36_oned(oned: FakeOned, client: OneClient) -> None:
    oned.methods = methods_of("3.6")
    oned.methods["one.datastore.info"] = ok(DATASTORE_POOL[16:-17])
    oned.methods["one.cluster.info"] = ok(CLUSTER_POOL[14:-15])
    assert client.host_pool()[0].cluster_id == -1  # appended after onedb
    assert client.vm_pool()[0].resched is False
    assert client.vm(7).history[0].ds_id == 0
    assert client.image_pool()[0].cloning_id == -1
    assert client.image(3).datastore == "default"
    assert client.datastore_pool()[0].system is False
    assert client.datastore(1).images == (3,)
    assert client.cluster_pool()[0].hosts == (0,)
    assert client.cluster(100).template is not None
    assert client.user_pool()[0].auth_driver == "core"
    assert client.group_pool()[0].users == (0,)
    assert [params for _, params in oned.calls] == [
        (SESSION,),
        (SESSION, -2, -1, -1, -1),
        (SESSION, 7),
        (SESSION, -2, -1, -1),
        (SESSION, 3),
        (SESSION,),
        (SESSION, 1),
        (SESSION,),
        (SESSION, 100),
        (SESSION,),
        (SESSION,),
    ]


def test_call_returns_the_raw_value(oned: FakeOned, client: OneClient) -> None:
    oned.methods = {"one.host.enable": ok(0), "one.hostpool.info": ok("<HOST_POOL/>")}
    assert client.call("one.host.enable", 0, True) == 0
    assert client.call("one.hostpool.info") == "<HOST_POOL/>"
    assert oned.calls[0] == ("one.host.enable", (SESSION, 0, True))


# --- oned's error array ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (0x0100, OneAuthError),
        (0x0200, OneAuthError),
        (0x0400, OneNotFoundError),
        (0x0800, OneStateError),
        (0x1000, OneArgumentError),
        (0x2000, OneInternalError),
    ],
)
def test_error_codes_become_typed_errors_keeping_the_code(
    oned: FakeOned, client: OneClient, code: int, error: type[OneApiError]
) -> None:
    oned.methods = {
        "one.host.info": lambda *p: [False, f"[HostInfo] Error getting host [{p[1]}].", code]
    }
    exc = expect(error, client.host, 99)
    assert type(exc) is error
    assert exc.code == code
    assert not exc.retryable
    assert (
        str(exc) == f"one.host.info failed on {oned.url}/RPC2: [HostInfo] Error getting host [99]."
    )
    assert exc.hint


def test_unknown_error_code_is_a_response_error(oned: FakeOned, client: OneClient) -> None:
    oned.methods = {"one.host.info": lambda *p: [False, "odd", 1]}
    exc = expect(OneResponseError, client.host, 1)
    assert exc.code == 1
    assert "unknown error code 1" in str(exc)


def test_an_echoed_session_is_scrubbed_from_messages(oned: FakeOned, client: OneClient) -> None:
    oned.methods = {
        "one.hostpool.info": lambda session: [False, f"[HostPoolInfo] bad session {session}", 256],
        "one.vmpool.info": lambda session, *a: [False, f"password {PASSWORD} refused", 256],
    }
    exc = expect(OneAuthError, client.host_pool)
    assert "bad session ***" in str(exc)
    assert "refused" in str(expect(OneAuthError, client.vm_pool))


# --- XML-RPC faults ----------------------------------------------------------------------------


def test_unknown_method_is_method_missing(oned: FakeOned, client: OneClient) -> None:
    oned.methods = methods_of("3.2")
    for call in (client.datastore_pool, client.cluster_pool):
        exc = expect(OneMethodMissingError, call)
        assert exc.code == -506
        assert "does not exist" in str(exc)
    exc = expect(OneMethodMissingError, client.call, "one.system.version")
    assert "Method 'one.system.version' not defined" in str(exc)


def test_other_faults_are_argument_errors_with_the_fault_code(
    oned: FakeOned, client: OneClient
) -> None:
    def type_error(*params: Any) -> Any:
        raise xmlrpc.client.Fault(-501, 'Type mismatch: expected "int" for parameter 2')

    oned.methods = {"one.image.allocate": type_error}
    exc = expect(OneArgumentError, client.call, "one.image.allocate", "NAME=x")
    assert exc.code == -501
    assert 'expected "int" for parameter 2' in str(exc)
    assert "XML-RPC fault -501" in str(exc)


# --- replies that are not OpenNebula replies ---------------------------------------------------


def test_truncated_xml_body_names_the_method(oned: FakeOned, client: OneClient) -> None:
    oned.methods = {"one.hostpool.info": ok("<HOST_POOL><HOST><ID>0</ID><NAM")}
    exc = expect(OneResponseError, client.host_pool)
    assert str(exc).startswith("one.hostpool.info: malformed or truncated XML")


def test_garbage_body_names_the_method(oned: FakeOned, client: OneClient) -> None:
    oned.methods = {"one.vm.info": ok("Segmentation fault"), "one.host.info": ok(42)}
    assert "one.vm.info" in str(expect(OneResponseError, client.vm, 1))
    assert "got int" in str(expect(OneResponseError, client.host, 1))


def test_two_element_reply_is_a_response_error(oned: FakeOned, client: OneClient) -> None:
    oned.methods = {"one.hostpool.info": lambda *p: [True, "<HOST_POOL/>"]}
    exc = expect(OneResponseError, client.host_pool)
    assert "one.hostpool.info" in str(exc)
    assert "2-element array" in str(exc)


@pytest.mark.parametrize(
    "reply",
    ["just a string", ["yes", "<HOST_POOL/>", 0], [True, "<HOST_POOL/>", "0"], [False, 3, 256]],
)
def test_malformed_arrays_are_response_errors(
    oned: FakeOned, client: OneClient, reply: Any
) -> None:
    oned.methods = {"one.hostpool.info": lambda *p: reply}
    assert "one.hostpool.info" in str(expect(OneResponseError, client.host_pool))


def test_garbage_http_reply_is_a_response_error(oned: FakeOned) -> None:
    client = OneClient(f"{oned.url}/garbage", SESSION, timeout=5)
    exc = expect(OneResponseError, client.host_pool)
    assert str(exc).startswith("one.hostpool.info: ")
    assert "did not answer with XML-RPC" in str(exc)


# --- unreachable oned ----------------------------------------------------------------------------


def test_http_error_is_unavailable(oned: FakeOned) -> None:
    client = OneClient(f"{oned.url}/NOT-RPC2", SESSION, timeout=5)
    exc = expect(OneUnavailableError, client.host_pool)
    assert "HTTP 404" in str(exc)


def test_closed_port_is_unavailable_and_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OneClient(f"http://127.0.0.1:{port}/RPC2", SESSION, timeout=5)
    exc = expect(OneUnavailableError, client.host_pool)
    assert exc.retryable
    assert f"cannot reach oned at http://127.0.0.1:{port}/RPC2 (one.hostpool.info)" in str(exc)
    assert "refused" in str(exc).lower()


def test_silent_server_times_out_quickly_without_touching_the_socket_default() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never answers
        port = silent.getsockname()[1]
        client = OneClient(f"http://127.0.0.1:{port}/RPC2", SESSION, timeout=0.5)
        assert socket.getdefaulttimeout() is None
        started = time.monotonic()
        exc = expect(OneUnavailableError, client.host_pool)
        assert time.monotonic() - started < 3
    assert exc.retryable
    assert "no answer within 0.5s" in str(exc)
    assert socket.getdefaulttimeout() is None


# --- version detection -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3.2", "3.4", "3.6"])
def test_detect_version(oned: FakeOned, client: OneClient, version: str) -> None:
    oned.methods = methods_of(version)
    assert client.detect_version() is OneVersion(version)
    assert {method for method, _ in oned.calls} <= READ_ONLY
    assert ("one.vmpool.accounting", (SESSION, -2, -1, -1)) in oned.calls


@pytest.mark.parametrize("version", ["3.2", "3.4", "3.6"])
def test_detect_version_of_an_empty_cloud_trusts_the_probes(
    oned: FakeOned, client: OneClient, version: str
) -> None:
    oned.methods = methods_of(version, hosts="", vms="")
    assert client.detect_version() is OneVersion(version)


def test_detect_version_refuses_when_probes_and_markers_disagree(
    oned: FakeOned, client: OneClient
) -> None:
    oned.methods = methods_of("3.4", hosts=HOSTS["3.2"], vms=VMS["3.6"])
    exc = expect(OneResponseError, client.detect_version)
    message = str(exc)
    assert "the methods say OpenNebula 3.4" in message
    assert "host 0 with <TM_MAD> (3.2 only)" in message
    assert "VM 7 with <RESCHED> (3.6 only)" in message


def test_detect_version_counts_non_506_answers_as_present(
    oned: FakeOned, client: OneClient
) -> None:
    oned.methods = methods_of("3.6")
    oned.methods["one.vmpool.accounting"] = lambda *p: [
        False,
        "[VirtualMachinePoolAccounting] denied",
        512,
    ]
    assert client.detect_version() is OneVersion.V3_6


def test_detect_version_propagates_a_refused_session(oned: FakeOned, client: OneClient) -> None:
    oned.methods = {
        "one.datastorepool.info": lambda *p: [
            False,
            "[DatastorePoolInfo] User couldn't be authenticated, aborting call.",
            256,
        ]
    }
    oned.methods["one.system.version"] = oned.methods["one.datastorepool.info"]
    assert expect(OneAuthError, client.detect_version).code == 256


# --- construction and secrecy ------------------------------------------------------------------


def test_repr_hides_the_session_and_endpoint_password() -> None:
    client = OneClient("http://admin:proxy-pw@front:2633/RPC2", SESSION)
    assert repr(client) == "OneClient(endpoint='http://admin:***@front:2633/RPC2', timeout=30.0)"
    assert str(client) == repr(client)
    assert client.endpoint == "http://admin:***@front:2633/RPC2"
    assert not hasattr(client, "__dict__")  # nothing to dump with vars()
    assert client.timeout == 30.0


@pytest.mark.parametrize(
    ("endpoint", "session", "timeout", "words"),
    [
        ("front:2633", SESSION, 1.0, "not an http(s) URL"),
        ("grpc://front:2633", SESSION, 1.0, "not an http(s) URL"),
        ("http://front:port/RPC2", SESSION, 1.0, "not an http(s) URL"),
        ("http://front:2633/RPC2", PASSWORD, 1.0, "username:password"),
        ("http://front:2633/RPC2", "oneadmin:", 1.0, "username:password"),
        ("http://front:2633/RPC2", SESSION, 0, "must be positive"),
    ],
)
def test_bad_settings_are_config_errors(
    endpoint: str, session: str, timeout: float, words: str
) -> None:
    exc = expect(ConfigError, OneClient, endpoint, session, timeout=timeout)
    assert words in str(exc)
