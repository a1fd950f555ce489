"""From the federation's attack families (``flows.taxonomy``) to MITRE ATT&CK techniques.

A family is what a flow classifier can tell apart; an ATT&CK technique is how an
adversary achieves a goal. The table maps each family to the techniques whose network
traffic it describes, and gives the reason where no technique fits. docs/threat-intel.md
shows the same table; a test checks that every family of the taxonomy is in it.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.taxonomy import FAMILIES, UNKNOWN


@dataclass(frozen=True)
class Technique:
    """One ATT&CK (Enterprise) technique or sub-technique."""

    id: str  # T1498, T1595.002
    name: str  # as ATT&CK (and its MISP galaxy) names it; a sub-technique by its own name

    @property
    def url(self) -> str:
        return "https://attack.mitre.org/techniques/" + self.id.replace(".", "/") + "/"

    @property
    def misp_galaxy_tag(self) -> str:
        """The tag of the MISP galaxy cluster (``mitre-attack-pattern``) for this technique."""
        return f'misp-galaxy:mitre-attack-pattern="{self.name} - {self.id}"'


@dataclass(frozen=True)
class FamilyMapping:
    family: str
    title: str  # a readable name for the family
    techniques: tuple[Technique, ...]
    note: str  # why these techniques, or why none


_T = Technique
DOS_NET = _T("T1498", "Network Denial of Service")
DOS_END = _T("T1499", "Endpoint Denial of Service")
SERVICE_DISCOVERY = _T("T1046", "Network Service Discovery")
ACTIVE_SCANNING = _T("T1595", "Active Scanning")
VULN_SCANNING = _T("T1595.002", "Vulnerability Scanning")  # sub-technique of T1595
BRUTE_FORCE = _T("T1110", "Brute Force")
EXPLOIT_PUBLIC = _T("T1190", "Exploit Public-Facing Application")
PRIV_ESC = _T("T1068", "Exploitation for Privilege Escalation")
APP_LAYER_C2 = _T("T1071", "Application Layer Protocol")
EXPLOIT_REMOTE = _T("T1210", "Exploitation of Remote Services")

MAPPING: dict[str, FamilyMapping] = {
    m.family: m
    for m in (
        FamilyMapping("dos", "Denial of service", (DOS_NET, DOS_END),
                      "flooding a network (T1498) or exhausting a host's service (T1499)"),
        FamilyMapping("probe", "Scanning and reconnaissance", (SERVICE_DISCOVERY, ACTIVE_SCANNING),
                      "port and host sweeps: discovery from inside (T1046), scanning from outside (T1595)"),
        FamilyMapping("r2l", "Remote-to-local access", (BRUTE_FORCE, EXPLOIT_PUBLIC),
                      "KDD's remote access: password guessing (T1110) and exploited services such as phf or imap (T1190)"),
        FamilyMapping("u2r", "User-to-root escalation", (PRIV_ESC,),
                      "buffer overflows and rootkits run to become root (T1068)"),
        FamilyMapping("bruteforce", "Password brute force", (BRUTE_FORCE,),
                      "password guessing against FTP and SSH (T1110)"),
        FamilyMapping("web", "Web application attack", (EXPLOIT_PUBLIC, BRUTE_FORCE),
                      "SQL injection and XSS (T1190), login brute force against a web form (T1110)"),
        FamilyMapping("botnet", "Botnet command and control", (APP_LAYER_C2,),
                      "a compromised host talking to its controller over HTTP and the like (T1071)"),
        FamilyMapping("infiltration", "Infiltration", (SERVICE_DISCOVERY, EXPLOIT_REMOTE),
                      "a foothold that scans (T1046) and exploits (T1210) the inside network"),
        FamilyMapping("exploit", "Service exploitation", (EXPLOIT_PUBLIC, EXPLOIT_REMOTE),
                      "exploits and shellcode against exposed (T1190) or internal (T1210) services"),
        FamilyMapping("backdoor", "Backdoor", (),
                      "none: ATT&CK splits backdoors by how they were planted (web shell, service, account), "
                      "which a flow record does not show"),
        FamilyMapping("fuzzers", "Fuzzing", (VULN_SCANNING,),
                      "malformed input sent to find flaws; the closest technique is vulnerability scanning"),
        FamilyMapping("generic", "Generic cipher attack", (),
                      "none: UNSW-NB15's attacks on block ciphers have no ATT&CK technique"),
        FamilyMapping("worm", "Worm", (EXPLOIT_REMOTE,),
                      "self-propagation by exploiting remote services (T1210)"),
        FamilyMapping(UNKNOWN, "Unknown attack", (),
                      "none: the model's catch-all class for labels no taxonomy table knows"),
    )
}

assert set(FAMILIES) <= set(MAPPING), "every family of flows.taxonomy needs a row"


def mapping_for(family: str) -> FamilyMapping:
    """The row for ``family``; a class the taxonomy does not know gets an empty mapping."""
    return MAPPING.get(family) or FamilyMapping(family, family, (), "none: not a family of the taxonomy")


def techniques(family: str) -> tuple[Technique, ...]:
    return mapping_for(family).techniques
