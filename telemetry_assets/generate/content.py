"""Free text for generated events: prompts by intent, responses and feedback, with planted PII.

Every personal value comes from fixed pools built from the seed, so a test can list exactly what was
planted (`PiiPools.all_values`) and scan the warehouse for it. Benign look-alikes (order numbers,
versions, dates, SKUs, tracking numbers, card-like numbers that fail Luhn) are planted beside them:
a redactor must leave those alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from stdnum import luhn
from stdnum.iso7064 import mod_97_10

INTENT_PROMPTS = {
    "billing": [
        "Why was I charged twice this month?",
        "Please refund order {benign}, my card {card} was billed by mistake",
        "Update the billing email to {email}",
        "My invoice shows the wrong VAT number, can you fix it?",
    ],
    "technical_support": [
        "How do I rotate my API key?",
        "The SDK {benign} crashes on startup, logs show requests from {ip}",
        "Webhook deliveries to {ipv6} keep timing out",
        "Our integration fails after upgrading to {benign}",
    ],
    "account": [
        "Change my phone number to {phone}",
        "I am {name}, please reset my password and send the link to {email}",
        "Close the account registered to SSN {ssn}",
        "Add {name} as an admin to our workspace",
    ],
    "content_generation": [
        "Can you draft a reply to this customer: please contact me at {email}",
        "Write a product description for SKU {benign}",
        "Draft a follow-up to {name} about the renewal",
        "Write a short announcement for release {benign}",
    ],
    "translation": [
        "Translate the onboarding email to German",
        "Translate this for {name}: call me on {phone}",
        "Translate our refund policy into Spanish",
    ],
    "summarization": [
        "Summarise this thread about shipment {benign}",
        "Summarise the call notes with {name}",
        "Give me a one-paragraph summary of the Q3 report",
    ],
    "data_analysis": [
        "Which plan had the highest churn last quarter?",
        "Reconcile payments to IBAN {iban} with the ledger",
        "Chart weekly active users since {benign}",
    ],
}
RESPONSES = [
    "Here is a draft you can send.",
    "I have updated the details as requested.",
    "Sure. I found the relevant setting under Account > Security.",
    "I could not find that order; could you confirm {benign}?",
    "Done: the confirmation will go to {email}.",
    "I will call {phone} to confirm.",
]
FEEDBACK = [
    "Great answer, thanks",
    "Wrong again, I asked about {benign}",
    "Please have someone call me at {phone}",
    "This leaked my card {card} into the chat!",
    "Not helpful",
    "Email me at {email} instead",
]
FIRST_NAMES = ["Jane", "Omar", "Priya", "Luca", "Mei", "Carlos", "Aisha", "Henrik", "Sofia", "Kwame"]
LAST_NAMES = ["Doe", "Haddad", "Raman", "Rossi", "Chen", "Alvarez", "Bello", "Larsen", "Novak", "Mensah"]


def iban_gb(rng: random.Random) -> str:
    """A checksum-valid British IBAN, printed in groups of four."""
    bban = "WEST" + f"{rng.randrange(10**6):06d}" + f"{rng.randrange(10**8):08d}"
    iban = f"GB{mod_97_10.calc_check_digits(bban + 'GB')}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


@dataclass(frozen=True)
class PiiPools:
    """Personal values planted in text, by entity type."""

    values: dict[str, tuple[str, ...]]
    benign: tuple[str, ...]

    @classmethod
    def build(cls, rng: random.Random, size: int = 40) -> "PiiPools":
        names = [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(size)]
        values = {
            "email": [_email(rng, n) for n in names],
            "phone": [_phone(rng) for _ in range(size)],
            "card": [_card(rng) for _ in range(size)],
            "ssn": [f"{rng.randrange(100, 665):03d}-{rng.randrange(1, 99):02d}-{rng.randrange(1, 9999):04d}" for _ in range(size)],
            "iban": [iban_gb(rng) for _ in range(size)],
            "ip": [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(size)],
            "ipv6": [f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}" for _ in range(size)],
            "name": names,
        }
        benign = [_benign(rng) for _ in range(size)]
        return cls({k: tuple(v) for k, v in values.items()}, tuple(benign))

    def all_values(self) -> list[str]:
        return sorted({value for pool in self.values.values() for value in pool})

    def fill(self, rng: random.Random, template: str) -> str:
        picks = {kind: rng.choice(pool) for kind, pool in self.values.items()}
        return template.format(benign=rng.choice(self.benign), **picks)


def _email(rng: random.Random, name: str) -> str:
    first, last = name.lower().split()
    domain = rng.choice(["example.org", "mail.example.com", "corp.example.co.uk"])
    tag = rng.choice(["", "", "+billing", "+ai"])
    return f"{first}.{last}{tag}@{domain}"


def _phone(rng: random.Random) -> str:
    return rng.choice([
        f"+44 20 7946 {rng.randrange(10**4):04d}",
        f"(212) 555-{rng.randrange(10**4):04d}",
        f"+1 415 555 {rng.randrange(10**4):04d}",
        f"+49 30 901820{rng.randrange(100):02d}",
    ])


def _card(rng: random.Random) -> str:
    body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
    number = body + luhn.calc_check_digit(body)
    sep = rng.choice([" ", "-", ""])
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _benign(rng: random.Random) -> str:
    return rng.choice([
        f"ORD-{rng.randrange(10**6):06d}",
        f"v{rng.randrange(1, 5)}.{rng.randrange(20)}.{rng.randrange(10)}",
        f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        f"SKU-{rng.randrange(10**4):04d}-{rng.choice('ABCDEFG')}",
        f"1Z999AA1{rng.randrange(10**10):010d}",
        "4111 1111 1111 1112",  # card-shaped, fails Luhn
    ])
