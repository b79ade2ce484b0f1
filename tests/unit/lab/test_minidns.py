"""The collateral lab's DNS wire format, checked against scapy's decoder."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS

from lab import minidns


def test_query_decodes_as_dns() -> None:
    q = DNS(minidns.encode_query(0x1234, "www.example.test", minidns.TYPE_AAAA))
    assert q.id == 0x1234 and q.rd == 1 and q.qr == 0
    assert q.qd[0].qname == b"www.example.test." and q.qd[0].qtype == minidns.TYPE_AAAA


@pytest.mark.parametrize(("qtype", "rdata"), [(minidns.TYPE_A, "192.0.2.80"),
                                              (minidns.TYPE_AAAA, "2001:db8::80")])  # fmt: skip
def test_answer_carries_one_record_and_matches_its_query(qtype: int, rdata: str) -> None:
    query = minidns.encode_query(7, "www.example.test", qtype)
    answer = minidns.encode_answer(query, "192.0.2.80", "2001:db8::80")
    parsed = DNS(answer)
    assert parsed.qr == 1 and parsed.rcode == 0 and parsed.ancount == 1
    assert parsed.an[0].rdata == rdata and parsed.an[0].type == qtype
    assert minidns.answers(answer, 7, "www.example.test", qtype)
    assert not minidns.answers(answer, 8, "www.example.test", qtype)  # another query's id
    assert not minidns.answers(answer, 7, "other.test", qtype)
    assert not minidns.answers(query, 7, "www.example.test", qtype)  # a query, not an answer


def test_other_types_get_an_empty_answer() -> None:
    query = minidns.encode_query(9, "example.test", 16)  # TXT
    parsed = DNS(minidns.encode_answer(query, "192.0.2.80", "2001:db8::80"))
    assert parsed.qr == 1 and parsed.ancount == 0
    assert not minidns.answers(bytes(parsed), 9, "example.test", 16)


@pytest.mark.parametrize(("msg", "field"), [(b"\x00\x01", "header"),
                                            (b"\x00" * 12, "qdcount"),
                                            (b"\x00\x01\x01\x00\x00\x01" + b"\x00" * 6 + b"\x05ab",
                                             "qname")])  # fmt: skip
def test_malformed_messages_name_the_field(msg: bytes, field: str) -> None:
    with pytest.raises(minidns.DnsError, match=field):
        minidns.decode_question(msg)
    assert not minidns.answers(msg, 1, "x", 1)


def test_bad_names_are_refused() -> None:
    with pytest.raises(minidns.DnsError, match="name"):
        minidns.encode_query(1, "a..b")
