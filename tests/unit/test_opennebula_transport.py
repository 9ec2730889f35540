"""The transport's reply parser: xmlrpc.client's own, with expat's character data buffered.

Every reply must come out exactly as the stock ``xmlrpc.client.getparser()`` makes it: the
same values, the same Fault, the same ExpatError. Buffering only changes how many pieces
the text of a <string> reaches the unmarshaller in (one instead of one per entity).
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Callable
from typing import Any
from xml.parsers.expat import ExpatError

import pytest

from upgrader.opennebula.transport import (
    TEXT_BUFFER,
    BufferedExpatParser,
    TimeoutTransport,
    reply_parser,
)

Parse = Callable[[bytes], Any]


def stock(body: bytes) -> Any:
    """What pyone's ``parse_response`` did before: xmlrpc.client's parser, fed at once."""
    parser, target = xmlrpc.client.getparser()
    parser.feed(body)
    parser.close()
    return target.close()


def buffered(body: bytes) -> Any:
    parser, target = reply_parser()
    parser.feed(body)
    parser.close()
    return target.close()


def buffered_in_pieces(body: bytes, size: int = 7) -> Any:
    """Fed a few bytes at a time: pieces cut through entities and UTF-8 sequences."""
    parser, target = reply_parser()
    for start in range(0, len(body), size):
        parser.feed(body[start : start + size])
    parser.close()
    return target.close()


def outcome(parse: Parse, body: bytes) -> tuple[object, ...]:
    """The value, or the exception's type and text."""
    try:
        return ("value", parse(body))
    except (ExpatError, xmlrpc.client.Fault, xmlrpc.client.ResponseError, ValueError) as exc:
        return ("raised", type(exc), str(exc))


def reply(*values: object) -> bytes:
    """A reply as Python's XML-RPC server (the simulator) writes it."""
    return xmlrpc.client.dumps((list(values),), methodresponse=True).encode()


def xmlrpc_c_reply(escaped: str, ok: str = "1", code: str = "<i4>0</i4>") -> bytes:
    """A reply as oned's xmlrpc-c writes it: CRLF line ends, <i4>, an encoding declaration."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n<methodResponse>\r\n<params>\r\n'
        "<param><value><array><data>\r\n"
        f"<value><boolean>{ok}</boolean></value>\r\n"
        f"<value><string>{escaped}</string></value>\r\n"
        f"<value>{code}</value>\r\n"
        "</data></array></value></param>\r\n</params>\r\n</methodResponse>\r\n"
    ).encode()


POOL = (
    "<VM_POOL><VM><ID>7</ID><NAME>web &amp; db</NAME><TEMPLATE>"
    "<NOTE><![CDATA[a <b> & \"c\" 'd']]></NOTE><CONTEXT><SSH><![CDATA[ssh-rsa AAAA]]></SSH>"
    "</CONTEXT></TEMPLATE></VM></VM_POOL>"
)
BIG_POOL = (
    "<VM_POOL>"
    + "".join(
        f"<VM><ID>{n}</ID><NAME>vm-{n} &amp; é 日本 😀</NAME><NOTE><![CDATA[<x> & y]]></NOTE></VM>"
        for n in range(3000)
    )
    + "</VM_POOL>"
)


def envelope(value: str, declaration: str = "<?xml version='1.0'?>\n") -> bytes:
    """``value`` (raw XML-RPC) as the only parameter of a reply."""
    return (
        f"{declaration}<methodResponse><params><param><value>{value}</value>"
        "</param></params></methodResponse>"
    ).encode()


REPLIES: dict[str, bytes] = {
    "escaped pool document": reply(True, POOL, 0),
    "pool bigger than the text buffer": reply(True, BIG_POOL, 0),
    "xmlrpc-c layout with CRLF and i4": xmlrpc_c_reply(
        xmlrpc.client.escape(POOL).replace('"', "&quot;").replace("'", "&apos;")
    ),
    "numeric references": xmlrpc_c_reply("&#60;A&#62;&#x3C;/A&#x3e; &#233;&#x1F600; &#13;&#10;"),
    "numeric and named references that must not be decoded twice": xmlrpc_c_reply(
        "&#38;lt; &amp;#60; &#38;amp; &amp;amp;lt;"
    ),
    "non-ASCII UTF-8": reply(True, "<NAME>é, 日本, 😀</NAME>", 0),
    "ISO-8859-1 declaration": (
        b'<?xml version="1.0" encoding="ISO-8859-1"?><methodResponse><params><param><value>'
        b"<array><data><value><boolean>1</boolean></value><value><string>caf\xe9 &lt;x/&gt;"
        b"</string></value><value><int>0</int></value></data></array></value></param></params>"
        b"</methodResponse>"
    ),
    "raw CR and CRLF in the text": xmlrpc_c_reply("a\r\nb\rc\nd"),
    "failure reply": reply(
        False, "[VirtualMachinePoolInfo] User couldn't be authenticated, aborting call.", 256
    ),
    "empty string": reply(True, "", 0),
    "empty string element": xmlrpc_c_reply("").replace(b"<string></string>", b"<string/>"),
    "untyped value is a string": envelope("  plain &lt;text&gt;  "),
    "other types": reply(1, -2.5, "x", {"a": [1, {"b": "&"}]}, xmlrpc.client.Binary(b"\x00\xff")),
    "dateTime": envelope("<dateTime.iso8601>20120606T12:00:00</dateTime.iso8601>"),
    "nil": envelope("<nil/>"),
    "fault": xmlrpc.client.dumps(
        xmlrpc.client.Fault(-506, "Method 'one.datastorepool.info' not defined"),
        methodresponse=True,
    ).encode(),
    "truncated": reply(True, POOL, 0)[:-40],
    "stray ampersand": xmlrpc_c_reply("a & b"),
    "unknown entity": xmlrpc_c_reply("&nbsp;"),
    "control character": xmlrpc_c_reply("a\x01b"),
    "reference to a character XML forbids": xmlrpc_c_reply("&#0;"),
    "markup inside the string": xmlrpc_c_reply("<VM_POOL/>"),
    "not XML at all": b"<html><body>502 Bad Gateway</body>",
    "empty body": b"",
    "invalid UTF-8": envelope("<string>caf@</string>").replace(b"@", b"\xe9"),
}


@pytest.mark.parametrize("body", REPLIES.values(), ids=REPLIES.keys())
def test_buffered_parser_answers_like_the_stock_one(body: bytes) -> None:
    expected = outcome(stock, body)
    assert outcome(buffered, body) == expected
    assert outcome(buffered_in_pieces, body) == expected


def test_the_cases_cover_values_faults_and_parse_errors() -> None:
    results = [outcome(stock, body) for body in REPLIES.values()]
    assert ("value", ([True, POOL, 0],)) in results
    assert {result[1] for result in results if result[0] == "raised"} == {
        ExpatError,
        xmlrpc.client.Fault,
    }


def test_escaped_document_comes_back_as_it_was_sent() -> None:
    assert buffered(reply(True, BIG_POOL, 0)) == ([True, BIG_POOL, 0],)
    assert len(BIG_POOL.encode()) > 4 * TEXT_BUFFER  # several buffers' worth


def test_references_are_decoded_once() -> None:
    ((ok, text, code),) = buffered(
        REPLIES["numeric and named references that must not be decoded twice"]
    )
    assert (ok, code) == (True, 0)
    assert text == "&lt; &#60; &amp; &amp;lt;"
    ((_, text, _),) = buffered(REPLIES["numeric references"])
    assert text == "<A></A> é😀 \r\n"
    ((_, text, _),) = buffered(REPLIES["raw CR and CRLF in the text"])
    assert text == "a\nb\nc\nd"  # XML end-of-line handling, as the stock parser does


def test_fault_reply_raises_the_fault() -> None:
    with pytest.raises(xmlrpc.client.Fault) as caught:
        buffered(REPLIES["fault"])
    assert caught.value.faultCode == -506
    assert caught.value.faultString == "Method 'one.datastorepool.info' not defined"


def test_transport_unmarshals_with_the_buffered_parser() -> None:
    transport = TimeoutTransport(5.0, https=False)
    parser, _ = transport.getparser()
    assert isinstance(parser, BufferedExpatParser)
    assert transport.unmarshal(REPLIES["escaped pool document"]) == ([True, POOL, 0],)
    with pytest.raises(xmlrpc.client.Fault):
        transport.unmarshal(REPLIES["fault"])
    with pytest.raises(ExpatError):
        transport.unmarshal(REPLIES["truncated"])


def test_builtin_types_option_is_passed_to_the_unmarshaller() -> None:
    parser, target = reply_parser(use_builtin_types=True)
    parser.feed(REPLIES["other types"])
    parser.close()
    assert target.close()[0][4] == b"\x00\xff"


def test_text_reaches_the_unmarshaller_in_few_pieces() -> None:
    """The point of the buffering: not one call per entity (tens of thousands here)."""
    body = REPLIES["pool bigger than the text buffer"]
    pieces: list[str] = []
    target = xmlrpc.client.Unmarshaller()
    unbuffered_data = target.data
    target.data = lambda text: (pieces.append(text), unbuffered_data(text))  # type: ignore[method-assign]
    parser = BufferedExpatParser(target)
    parser.feed(body)
    parser.close()
    assert target.close() == ([True, BIG_POOL, 0],)
    assert len(pieces) < len(body) // TEXT_BUFFER + 20
    assert body.count(b"&") > 10_000
