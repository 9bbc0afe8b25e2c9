"""`make mutate`: mutation testing of the security core (issue 19, item 6). Not part of CI.

Runs mutmut (configured in pyproject.toml's ``[tool.mutmut]``: the four modules and their
unit tests only) from a clean ``mutants/`` copy, then prints, per module, how many
mutants the tests killed and which survived. A survivor listed in ``REVIEWED`` below was
judged not to change any decision (an equivalent mutant, or one that only changes a
message's wording nobody parses); the listing checks that the mutant still is the line
that was judged, so a renumbered mutant is shown as unreviewed rather than excused.

Exit status 1 when a survivor is unreviewed: a test is missing, or a judgement is.

    MUTATE_JOBS=2        mutmut's --max-children (the machine's cores by default)
    MUTATE_KEEP=1        keep mutants/ and mutmut's cached results from the last run
"""

# ruff: noqa: S603  # runs this interpreter (mutmut, pip) with arguments of its own

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KILLED = {1, 3, 36, 37, -24, 24, 152, 255}  # mutmut's exit codes: killed, timeout, type check
SURVIVED = 0

# mutant name -> (the mutated line as `mutmut show` prints it after "+", why it is harmless)
REVIEWED: dict[str, tuple[str, str]] = {
    "berkas.core.envelope.x_decrypt__mutmut_20": (
        'chunk_bytes = struct.unpack_from(">i", header, 5)[0]',
        "_read_header already refused chunk sizes above 16 MiB, so signed and unsigned read alike",
    ),
    "berkas.core.envelope.x_decrypt__mutmut_44": (
        "yield _open(aead, prefix, box, header, index=index, last=None)",
        "_nonce and _open test last for truth: None and False give flag 0",
    ),
    "berkas.core.links.xǁLinkSignerǁverify__mutmut_45": (
        'if not hmac.compare_digest(expected.encode("ASCII"), signature.encode("ascii")):',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.links.xǁLinkSignerǁverify__mutmut_48": (
        'if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ASCII")):',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.links.xǁLinkSignerǁurl__mutmut_13": (
        "path = quote(key, )",
        "quote's default safe is already '/'",
    ),
    "berkas.core.links.xǁLinkSignerǁurl__mutmut_14": (
        'path = quote(key, safe="XX/XX")',
        "'X' is a letter, which quote never escapes",
    ),
    "berkas.core.links.xǁLinkSignerǁ_mac__mutmut_18": (
        'return base64.urlsafe_b64encode(mac).rstrip(b"XX=XX").decode("ascii")',
        "base64 of 32 bytes ends in one of AEIMQUYcgkosw048 (2 zero bits) then '=', never 'X'",
    ),
    "berkas.core.links.xǁLinkSignerǁ_mac__mutmut_20": (
        'return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ASCII")',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.signing.x_digest__mutmut_5": (
        'return base64.b64encode(hashlib.sha256(body).digest()).decode("ASCII")',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.signing.x_sign__mutmut_21": (
        'mac = hmac.new(secret_key.encode("UTF-8"), message.encode("utf-8"), hashlib.sha256)',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.signing.x_sign__mutmut_24": (
        'mac = hmac.new(secret_key.encode("utf-8"), message.encode("UTF-8"), hashlib.sha256)',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.signing.x_sign__mutmut_29": (
        'return SIGNATURE_PREFIX + base64.b64encode(mac.digest()).decode("ASCII")',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.signing.x_signature_matches__mutmut_7": (
        'given = signature.encode("UTF-8", "surrogatepass")',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.signing.x_signature_matches__mutmut_34": (
        'matched |= hmac.compare_digest(expected.encode("ASCII"), given)',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.egress.xǁEgressPolicyǁ__post_init____mutmut_10": (
        "check_ports(self.allow_ports, )",
        "check_ports' field defaults to 'allow_ports'",
    ),
    "berkas.core.egress.x_parse_url__mutmut_66": (
        'path_and_query = remainder.split("#", )[0]',
        "the first piece of a split is the same whatever maxsplit",
    ),
    "berkas.core.egress.x_parse_url__mutmut_69": (
        'path_and_query = remainder.split("#", 2)[0]',
        "the first piece of a split is the same whatever maxsplit",
    ),
    "berkas.core.egress.x_parse_networks__mutmut_8": (
        "network = ipaddress.ip_network(item, )",
        "ip_network's strict defaults to True",
    ),
    "berkas.core.egress.x__split_scheme__mutmut_9": (
        "and scheme[:2].isascii()",
        "the all(ch.isascii() ...) conjunct already requires every character ASCII",
    ),
    "berkas.core.egress.x__split_scheme__mutmut_15": (
        'and all(ch.isascii() and (ch.isalnum() or ch in "XX+-.XX") for ch in scheme)',
        "'X' is alphanumeric, accepted by isalnum() already",
    ),
    "berkas.core.egress.x__split_authority__mutmut_7": (
        "if close <= 0:",
        "the authority starts with '[', so find(']') is never 0",
    ),
    "berkas.core.egress.x__split_authority__mutmut_8": (
        "if close < 1:",
        "the authority starts with '[', so find(']') is never 0",
    ),
    "berkas.core.egress.x__split_authority__mutmut_50": (
        "if not port_text or len(port_text) > 5 or not set(port_text) < _DEC:",
        "a port of at most 5 characters cannot hold all ten digits, so < and <= agree",
    ),
    "berkas.core.egress.x__normalise_host__mutmut_15": (
        'host = host.encode("IDNA").decode("ascii")',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.egress.x__normalise_host__mutmut_17": (
        'host = host.encode("idna").decode("ASCII")',
        "codec names are case-insensitive (codecs.lookup normalises them)",
    ),
    "berkas.core.egress.x__ends_in_number__mutmut_6": (
        "return set(label[2:]) < _HEX",
        "the host is lower-cased first, so a label never holds all 22 characters of _HEX (A-F)",
    ),
    "berkas.core.egress.x__parse_ipv4__mutmut_11": (
        'elif len(label) >= 1 and label.startswith("0"):',
        'a lone "0" read as octal with no digits is 0, as in decimal',
    ),
    "berkas.core.egress.x__as_ip__mutmut_6": (
        'address = ipaddress.ip_address(address.split("%", )[0])',
        "the first piece of a split is the same whatever maxsplit",
    ),
    "berkas.core.egress.x__as_ip__mutmut_9": (
        'address = ipaddress.ip_address(address.split("%", 2)[0])',
        "the first piece of a split is the same whatever maxsplit",
    ),
    "berkas.core.egress.x__as_ip__mutmut_7": (
        'address = ipaddress.ip_address(address.rsplit("%", 1)[0])',
        "message only: a scope holding '%' (invalid text) is still refused, as 'unspecified'",
    ),
    "berkas.core.egress.x__classify_v6__mutmut_24": (
        'if ip in _net("64:FF9B::/96"):  # NAT64 well-known prefix, RFC 6052 2.1',
        "IPv6 text is case-insensitive: the same network",
    ),
    "berkas.core.egress.x__classify_v6__mutmut_31": (
        'if ip in _net("64:FF9B:1::/48"):',
        "IPv6 text is case-insensitive: the same network",
    ),
}


def main() -> int:
    os.chdir(ROOT)
    _ensure_mutmut()
    if os.environ.get("MUTATE_KEEP") != "1":
        shutil.rmtree("mutants", ignore_errors=True)
    jobs = os.environ.get("MUTATE_JOBS", str(os.cpu_count() or 1))
    run = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", jobs],
        stdout=subprocess.DEVNULL,
        check=False,
    )
    if run.returncode != 0:
        print(f"mutmut run failed with status {run.returncode}", file=sys.stderr)
        return run.returncode
    return _report()


def _ensure_mutmut() -> None:
    try:
        import mutmut  # noqa: F401, PLC0415  # only to see whether it is installed
    except ImportError:
        extras = tomllib.loads(Path("pyproject.toml").read_text())["project"]
        spec = next(s for s in extras["optional-dependencies"]["dev"] if s.startswith("mutmut"))
        print(f"installing {spec} (the dev extra's pin)")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", spec], check=True)


def _report() -> int:
    config = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]
    unreviewed: list[str] = []
    excused: list[str] = []
    print(
        f"{'module':<32} {'mutants':>7} {'killed':>6} {'survived':>8} {'harmless':>8} score (raw)"
    )
    for source in config["only_mutate"]:
        meta = Path("mutants") / f"{source}.meta"
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        counts = Counter(
            "killed" if c in KILLED else "survived" if c == SURVIVED else "other"
            for c in codes.values()
        )
        survivors = sorted(name for name, c in codes.items() if c == SURVIVED)
        harmless = []
        for name in survivors:
            judged = REVIEWED.get(name)
            if judged is not None and judged[0] in _mutated_lines(name):
                harmless.append(name)
                excused.append(f"  {name}: {judged[1]}")
            else:
                unreviewed.append(name)
        total = len(codes)
        decisive = total - len(harmless)
        score = 100.0 * counts["killed"] / decisive if decisive else 100.0
        raw = 100.0 * counts["killed"] / total if total else 100.0
        print(
            f"{source:<32} {total:>7} {counts['killed']:>6} {counts['survived']:>8} "
            f"{len(harmless):>8} {score:5.1f}% ({raw:.1f}%)"
            + (f"  ({counts['other']} not run or suspicious)" if counts["other"] else "")
        )
    print("score = killed / (mutants - reviewed harmless survivors); raw = killed / mutants")
    if excused:
        print(f"\n{len(excused)} survivors reviewed as equivalent or message-only:")
        print("\n".join(excused))
    if unreviewed:
        print(f"\n{len(unreviewed)} surviving mutants not reviewed (mutmut show <name>):")
        for name in unreviewed:
            print(f"  {name}: {' | '.join(_mutated_lines(name))}")
        return 1
    return 0


def _mutated_lines(name: str) -> list[str]:
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [
        line[1:].strip()
        for line in shown.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]


if __name__ == "__main__":
    sys.exit(main())
