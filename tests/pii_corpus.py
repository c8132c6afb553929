"""Labelled PII examples (entity, value, sentence) and benign look-alikes that must survive."""

from __future__ import annotations

import random

from stdnum import luhn

EMAILS = [
    "jane.doe@example.org", "jane.doe+billing@example.org", "omar@mail.example.com", "PRIYA.RAMAN@EXAMPLE.COM",
    "l.rossi@corp.example.co.uk", "mei_chen99@example.io", "carlos-alvarez@sub.domain.example.net",
    "a@b.co", "first.last+tag+more@example.travel", "user%ops@example.org", "x123@example.de",
    "support@help.example.com", "henrik.larsen@example.dk", "sofia.novak@example.cz", "kwame+ai@example.gh",
    "no-reply@notifications.example.com", "o'neil@example.ie".replace("'", ""), "test.user@localhost.example",
    "bob@example.museum", "ab-cd@ex-ample.com", "info@xn--bcher-kva.example", "u1@a1.example.org",
    "name.surname@department.university.edu", "sales+eu-west@example.com", "z@example.fr",
    "Mixed.Case@Example.Org", "ops.team@internal.example.cloud", "me@my-domain.example.app",
    "user_name@example.co.jp", "dev+test@example.com.br",
]
PHONES = [
    "+44 20 7946 0958", "+44 7700 900123", "(212) 555-0147", "212-555-0147", "212.555.0147", "+1 415 555 0132",
    "+1 (646) 555-0199", "+1-202-555-0175", "415 555 0100", "+49 30 90182012", "+49 151 23456789",
    "+33 1 42 68 53 00", "+33 6 12 34 56 78", "+91 98765 43210", "+81 3-1234-5678", "+61 2 9374 4000",
    "+55 11 91234-5678", "+34 912 345 678", "+39 06 6982 1234", "+31 20 123 4567", "+46 8 123 456 78",
    "+1 416 555 0123", "+353 1 234 5678", "+27 21 123 4567", "+65 6123 4567", "+52 55 1234 5678",
    "(718) 555-0123", "+44 161 496 0000", "+1 312 555 0182", "+48 22 123 45 67",
]
IBANS = [
    "GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", "DE89 3704 0044 0532 0130 00", "DE89370400440532013000",
    "FR14 2004 1010 0505 0001 3M02 606", "NL91 ABNA 0417 1643 00", "NL91ABNA0417164300",
    "ES91 2100 0418 4502 0005 1332", "IT60 X054 2811 1010 0000 0123 456", "BE68 5390 0754 7034",
    "CH93 0076 2011 6238 5295 7", "AT61 1904 3002 3457 3201", "SE45 5000 0000 0583 9825 7466",
    "DK50 0040 0440 1162 43", "FI21 1234 5600 0007 85", "NO93 8601 1117 947", "PL61 1090 1014 0000 0712 1981 2874",
    "PT50 0002 0123 1234 5678 9015 4", "IE29 AIBK 9311 5212 3456 78", "LU28 0019 4006 4475 0000",
]
NAMES = [
    "Jane Doe", "Omar Haddad", "Priya Raman", "Luca Rossi", "Mei Chen", "Carlos Alvarez", "Aisha Bello",
    "Henrik Larsen", "Sofia Novak", "Kwame Mensah", "Fatima Zahra", "Ivan Petrov", "Hiroshi Tanaka",
    "Elena Garcia", "Rahul Sharma", "Ingrid Berg", "Yusuf Demir", "Chloe Martin", "Diego Lopez", "Olga Ivanova",
]
TEMPLATES = [
    "please contact me at {v} about the refund",
    "My details: {v}.",
    "{v}",
    "Can you update it to {v}, thanks",
    "(reach: {v})",
    "note {v}; more later",
]


def _cards(rng: random.Random, count: int) -> list[str]:
    prefixes = ["4", "51", "55", "2221", "34", "37", "6011", "35"]
    cards = []
    for i in range(count):
        prefix = prefixes[i % len(prefixes)]
        length = 15 if prefix in ("34", "37") else 16
        body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
        number = body + luhn.calc_check_digit(body)
        style = i % 3
        if style == 0:
            cards.append(number)
        else:
            sep = " " if style == 1 else "-"
            groups = [number[0:4], number[4:10], number[10:]] if length == 15 else [number[j:j + 4] for j in range(0, 16, 4)]
            cards.append(sep.join(groups))
    return cards


def _ssns(rng: random.Random, count: int) -> list[str]:
    return [f"{rng.randrange(1, 665):03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}" for _ in range(count)]


def _ipv4s(rng: random.Random, count: int) -> list[str]:
    fixed = ["10.0.0.12", "192.168.1.254", "172.16.0.1", "8.8.8.8", "255.255.255.255", "0.0.0.0", "127.0.0.1"]
    return fixed + [".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(count - len(fixed))]


IPV6S = [
    "2001:db8::1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:db8:85a3::8a2e:370:7334", "fe80::1ff:fe23:4567:890a",
    "::1", "2001:db8:3f::1a", "2606:4700:4700::1111", "2a00:1450:4001:81c::200e", "fd12:3456:789a:1::1",
    "2001:db8:0:0:1:0:0:1", "2001:DB8::ABCD", "2001:db8:1234:ffff:ffff:ffff:ffff:ffff", "ff02::2",
    "2001:db8:a::123", "2001:db8::ff00:42:8329", "2400:cb00:2048:1::c629:d7a2", "2001:4860:4860::8888",
    "2620:fe::fe", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1", "fe80::200:f8ff:fe21:67cf",
]


def labelled_examples(seed: int = 5) -> list[tuple[str, str, str]]:
    """(entity, value, sentence) for every planted value, each value in one sentence."""
    rng = random.Random(seed)
    values = [("email", v) for v in EMAILS] + [("phone", v) for v in PHONES] + [("iban", v) for v in IBANS]
    values += [("card", v) for v in _cards(rng, 30)] + [("ssn", v) for v in _ssns(rng, 25)]
    values += [("ipv4", v) for v in _ipv4s(rng, 25)] + [("ipv6", v) for v in IPV6S] + [("person", v) for v in NAMES]
    return [(entity, value, TEMPLATES[i % len(TEMPLATES)].format(v=value)) for i, (entity, value) in enumerate(values)]


BENIGN = [
    "Order ORD-558812 has shipped", "Refund for order #100234 is approved", "Invoice INV-2026-000123 attached",
    "Upgrade to v2.14.3 fixed it", "Running version 1.2.3 on staging", "SDK 4.0.1-beta crashes",
    "Build 20260914 is green", "Released on 2026-09-14", "Meeting on 14/09/2026 at 10:30",
    "Deadline 09/15/2026", "The call is at 12:30:45 UTC", "Ratio 3:4:5 looks right",
    "SKU-0042-B is out of stock", "SKU 778-221-X back in stock", "Tracking 1Z999AA10123456784",
    "Tracking number 9400 1000 0000 0000 0000 00 hmm", "Card-like 4111 1111 1111 1112 fails Luhn",
    "Reference 1234 5678 9012 3457", "Account ref 5500 0000 0000 0005 9", "Port 8080 is open",
    "Room 404 on floor 3", "Total $1,234.56 due", "It costs 49.99 EUR", "Temperature 21.5 degrees",
    "Coordinates 51.5074, -0.1278", "Postcode SW1A 1AA", "ZIP 10001", "Error code E-1002",
    "HTTP 503 from the gateway", "Ticket T-0045821 escalated", "Case 00012345 closed", "PR #4521 merged",
    "Commit a1b2c3d4 reverted", "UUID 123e4567-e89b-12d3-a456-426614174000", "Hash deadbeefcafebabe",
    "Year 2026 planning", "Q3 revenue up 12%", "Rated 4.5/5 by 1200 users", "Page 12 of 300",
    "Use model gpt-4o-mini-2024-07-18", "Prompt v7 vs v8", "Latency 812 ms p95 1500 ms",
    "Order quantities 100, 250, 500", "Serial SN-2026-0001-XY", "Patch 10.0.19045.3803 installed",
    "Range 1-100 only", "Score 98-87 final", "ISBN 978-0-306-40615-7", "Call extension 1234",
    "GB is the country code", "See section 4.2.1", "Batch 2026-11-27-001", "Version string 3.11.7",
    "License key ABCD-EFGH-IJKL-MNOP", "Flight BA 0117 at 09:40", "Ref DE00 is not an IBAN",
    "Model costs 0.15 per million tokens", "Will you grace us with hope in June?", "Mark the task done",
    "Pool size 4 of 16 workers",
]
