"""Just enough DNS wire format for the collateral lab (RFC 1035): build a query, answer
one with a fixed A or AAAA record, and check that an answer matches its query. The
standard library has no DNS codec, and the lab needs nothing more."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
_HEADER = struct.Struct("!HHHHHH")  # id, flags, qd, an, ns, ar
FLAG_RD = 0x0100  # recursion desired
FLAG_ANSWER = 0x8180  # response, recursion desired + available, no error
TTL_S = 60


class DnsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Question:
    qid: int
    name: str
    qtype: int
    end: int  # offset just past the question section


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise DnsError(f"name: bad label {label!r} in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def encode_query(qid: int, name: str, qtype: int = TYPE_A) -> bytes:
    return (
        _HEADER.pack(qid, FLAG_RD, 1, 0, 0, 0)
        + encode_name(name)
        + struct.pack("!HH", qtype, CLASS_IN)
    )


def decode_question(msg: bytes) -> Question:
    """The first question of a message (no compression in questions we send)."""
    if len(msg) < _HEADER.size:
        raise DnsError(f"header: {len(msg)} bytes, need {_HEADER.size}")
    qid, _flags, qdcount, *_ = _HEADER.unpack_from(msg)
    if qdcount < 1:
        raise DnsError("qdcount: no question")
    labels, pos = [], _HEADER.size
    while True:
        if pos >= len(msg):
            raise DnsError("qname: runs past the end")
        n = msg[pos]
        pos += 1
        if n == 0:
            break
        if n >= 64:
            raise DnsError(f"qname: label length {n} (compression is not expected here)")
        labels.append(msg[pos : pos + n].decode("ascii", "replace"))
        pos += n
    if pos + 4 > len(msg):
        raise DnsError("qtype/qclass: runs past the end")
    qtype, _qclass = struct.unpack_from("!HH", msg, pos)
    return Question(qid, ".".join(labels), qtype, pos + 4)


def encode_answer(query: bytes, v4: str, v6: str) -> bytes:
    """The answer to `query`: one A (v4) or AAAA (v6) record; no records for other types."""
    q = decode_question(query)
    question = query[_HEADER.size : q.end]
    if q.qtype == TYPE_A:
        rdata = ipaddress.IPv4Address(v4).packed
    elif q.qtype == TYPE_AAAA:
        rdata = ipaddress.IPv6Address(v6).packed
    else:
        return _HEADER.pack(q.qid, FLAG_ANSWER, 1, 0, 0, 0) + question
    record = b"\xc0\x0c" + struct.pack("!HHIH", q.qtype, CLASS_IN, TTL_S, len(rdata)) + rdata
    return _HEADER.pack(q.qid, FLAG_ANSWER, 1, 1, 0, 0) + question + record


def answers(response: bytes, qid: int, name: str, qtype: int) -> bool:
    """Whether `response` is a successful answer, with at least one record, to the query
    (qid, name, qtype)."""
    try:
        q = decode_question(response)
    except DnsError:
        return False
    _, flags, _, ancount, _, _ = _HEADER.unpack_from(response)
    is_response, rcode = bool(flags & 0x8000), flags & 0x000F
    return (is_response and rcode == 0 and ancount >= 1 and q.qid == qid
            and q.name == name.rstrip(".") and q.qtype == qtype)  # fmt: skip
