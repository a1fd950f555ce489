"""Writes the small flow files the data tests read, in each data set's real layout.

Run from the repository root: ``.venv/bin/python tests/data/make_fixtures.py``.
The rows are made up (not copied from the data sets) but shaped like the real
ones; the files are committed so tests need nothing else.
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).parent
R = random.Random(20261127)


# -- NSL-KDD ---------------------------------------------------------------------------

def kdd_row(label: str, *, proto: str = "tcp", service: str = "http", flag: str = "SF",
            difficulty: int = 20) -> list[str]:
    attack = label != "normal"
    src = R.randint(0, 300) if attack else R.randint(100, 5000)
    dst = 0 if attack else R.randint(0, 20000)
    count = R.randint(100, 500) if label in ("neptune", "smurf", "apache2") else R.randint(1, 20)
    rate = lambda: f"{R.random():.2f}"  # noqa: E731
    cells = [
        str(R.randint(0, 5)), proto, service, flag, str(src), str(dst), "0", "0", "0",
        str(R.randint(0, 2)), "0", "1" if not attack else "0", "0", "0", "0", "0", "0", "0",
        "0", "0", "0", "0", str(count), str(R.randint(1, count)),
        *(rate() for _ in range(7)), str(R.randint(1, 255)), str(R.randint(1, 255)),
        *(rate() for _ in range(8)), label, str(difficulty),
    ]
    assert len(cells) == 43
    return cells


def write_nsl() -> None:
    train = (["normal"] * 14 + ["neptune"] * 5 + ["smurf"] * 2 + ["back", "teardrop"]
             + ["ipsweep", "portsweep", "satan", "nmap"] + ["guess_passwd", "warezclient"]
             + ["buffer_overflow", "rootkit"])
    rows = [kdd_row(lbl, service=R.choice(["http", "private", "ftp_data", "smtp"])) for lbl in train]
    rows[3][2] = "ecr_i"  # valid service in the vocabulary
    rows[4][1:3] = ["icmp", "eco_i"]
    (HERE / "nsl_kdd_train.txt").write_text("\n".join(",".join(r) for r in rows) + "\n")

    # KDDTest+ has attack names that never occur in training.
    test = ["normal"] * 6 + ["apache2", "mailbomb", "processtable", "mscan", "saint",
                             "snmpguess", "httptunnel", "xterm", "sqlattack", "neptune"]
    rows = [kdd_row(lbl) for lbl in test]
    rows[0][2] = "new_service_never_seen"  # → service=<other>
    (HERE / "nsl_kdd_test.txt").write_text("\n".join(",".join(r) for r in rows) + "\n")

    rows = [kdd_row("normal"), kdd_row("zeroday_worm"), kdd_row("neptune")]
    (HERE / "nsl_kdd_unknown.txt").write_text("\n".join(",".join(r) for r in rows) + "\n")

    good = [kdd_row(x) for x in ("normal", "neptune", "normal", "ipsweep", "normal", "smurf")]
    short = kdd_row("normal")[:40]
    text = kdd_row("normal")
    text[4] = "12kB"  # src_bytes not a number
    inf = kdd_row("normal")
    inf[24] = "inf"  # serror_rate
    nolabel = kdd_row("normal")
    nolabel[41] = ""
    lines = [good[0], good[1], short, good[2], text, good[3], inf, good[4], nolabel, good[5]]
    out = [",".join(r) for r in lines]
    out.insert(6, "")  # a blank line (7) is not a row
    # bad: line 3 (40 fields), 5 ("12kB"), 8 (inf rate), 10 (empty label)
    (HERE / "nsl_kdd_bad.txt").write_text("\n".join(out) + "\n")


# -- UNSW-NB15 -------------------------------------------------------------------------

PARTITIONED = (
    "srcip sport dstip dsport proto state dur sbytes dbytes sttl dttl sloss dloss service "
    "sload dload spkts dpkts swin dwin stcpb dtcpb smean dmean trans_depth response_body_len "
    "sjit djit stime ltime sinpkt dinpkt tcprtt synack ackdat is_sm_ips_ports ct_state_ttl "
    "ct_flw_http_mthd is_ftp_login ct_ftp_cmd ct_srv_src ct_srv_dst ct_dst_ltm ct_src_ltm "
    "ct_src_dport_ltm ct_dst_sport_ltm ct_dst_src_ltm attack_cat label"
).split()
TRAINING_HEADER = (
    "id,dur,proto,service,state,spkts,dpkts,sbytes,dbytes,rate,sttl,dttl,sload,dload,sloss,"
    "dloss,sinpkt,dinpkt,sjit,djit,swin,stcpb,dtcpb,dwin,tcprtt,synack,ackdat,smean,dmean,"
    "trans_depth,response_body_len,ct_srv_src,ct_state_ttl,ct_dst_ltm,ct_src_dport_ltm,"
    "ct_dst_sport_ltm,ct_dst_src_ltm,is_ftp_login,ct_ftp_cmd,ct_flw_http_mthd,ct_src_ltm,"
    "ct_srv_dst,is_sm_ips_ports,attack_cat,label"
).split(",")


def unsw_values(cat: str, label: str, service: str = "-", blank_http: bool = False) -> dict[str, str]:
    v = {c: str(R.randint(0, 30)) for c in PARTITIONED}
    v.update(
        srcip="59.166.0.1", sport=str(R.randint(1024, 65535)), dstip="149.171.126.6",
        dsport=R.choice(["80", "53", "0x000b", "-"]), proto=R.choice(["tcp", "udp"]),
        state=R.choice(["FIN", "CON", "INT"]), dur=f"{R.random() * 2:.6f}",
        sbytes=str(R.randint(100, 90000)), dbytes=str(R.randint(0, 90000)),
        sttl=R.choice(["31", "62", "254"]), dttl=R.choice(["29", "252", "0"]), service=service,
        sload=f"{R.random() * 1e6:.3f}", dload=f"{R.random() * 1e6:.3f}",
        swin="255", dwin="255", stcpb=str(R.randint(0, 2**32 - 1)),
        dtcpb=str(R.randint(0, 2**32 - 1)), sjit=f"{R.random() * 100:.4f}",
        djit=f"{R.random() * 100:.4f}", stime="1421927414", ltime="1421927416",
        sinpkt=f"{R.random() * 50:.4f}", dinpkt=f"{R.random() * 50:.4f}",
        tcprtt=f"{R.random() / 10:.6f}", synack=f"{R.random() / 10:.6f}",
        ackdat=f"{R.random() / 10:.6f}", is_sm_ips_ports="0",
        is_ftp_login="0", attack_cat=cat, label=label,
    )
    if blank_http:
        v["ct_flw_http_mthd"] = " "
        v["is_ftp_login"] = " "
    return v


def write_unsw() -> None:
    cats = ([("", "0")] * 10 + [(" Fuzzers ", "1"), ("Exploits", "1"), ("Reconnaissance", "1"),
                                  ("DoS", "1"), ("Generic", "1"), ("Backdoors", "1"),
                                  ("Analysis", "1"), ("Shellcode", "1"), ("Worms", "1")])
    rows = [unsw_values(c, lbl, service=R.choice(["-", "dns", "http"]), blank_http=i % 3 == 0)
            for i, (c, lbl) in enumerate(cats)]
    rows[2]["proto"] = "xns-idp"  # a protocol outside the vocabulary → <other>
    (HERE / "unsw_nb15_1.csv").write_text(
        "\n".join(",".join(r[c] for c in PARTITIONED) for r in rows) + "\n")

    cats = [("Normal", "0")] * 8 + [("Backdoor", "1"), ("Exploits", "1"), ("DoS", "1"),
                                    ("Generic", "1"), ("Reconnaissance", "1")]
    lines = [",".join(TRAINING_HEADER)]
    for i, (c, lbl) in enumerate(cats, start=1):
        v = unsw_values(c, lbl, service=R.choice(["-", "http", "ftp"]))
        v.update(id=str(i), rate=f"{R.random() * 1e5:.3f}")
        lines.append(",".join(v[c] for c in TRAINING_HEADER))
    (HERE / "unsw_nb15_testing-set.csv").write_text("\n".join(lines) + "\n")

    good = [unsw_values("", "0"), unsw_values("Exploits", "1"), unsw_values("", "0")]
    contradiction = unsw_values("", "1")  # normal category, attack label
    notnum = unsw_values("DoS", "1")
    notnum["sbytes"] = "n/a"
    rows = [good[0], contradiction, good[1], notnum, good[2]]
    out = [",".join(r[c] for c in PARTITIONED) for r in rows]
    out.insert(2, ",".join(good[0][c] for c in PARTITIONED[:-3]))  # 46 fields
    (HERE / "unsw_nb15_bad.csv").write_text("\n".join(out) + "\n")


# -- CICIDS2017 ------------------------------------------------------------------------

CIC_HEADER = (
    " Destination Port, Flow Duration, Total Fwd Packets, Total Backward Packets,"
    "Total Length of Fwd Packets, Total Length of Bwd Packets, Fwd Packet Length Max,"
    " Fwd Packet Length Min, Fwd Packet Length Mean, Fwd Packet Length Std,"
    "Bwd Packet Length Max, Bwd Packet Length Min, Bwd Packet Length Mean,"
    " Bwd Packet Length Std,Flow Bytes/s, Flow Packets/s, Flow IAT Mean, Flow IAT Std,"
    " Flow IAT Max, Flow IAT Min,Fwd IAT Total, Fwd IAT Mean, Fwd IAT Std, Fwd IAT Max,"
    " Fwd IAT Min,Bwd IAT Total, Bwd IAT Mean, Bwd IAT Std, Bwd IAT Max, Bwd IAT Min,"
    "Fwd PSH Flags, Bwd PSH Flags, Fwd URG Flags, Bwd URG Flags, Fwd Header Length,"
    " Bwd Header Length,Fwd Packets/s, Bwd Packets/s, Min Packet Length, Max Packet Length,"
    " Packet Length Mean, Packet Length Std, Packet Length Variance,FIN Flag Count,"
    " SYN Flag Count, RST Flag Count, PSH Flag Count, ACK Flag Count, URG Flag Count,"
    " CWE Flag Count, ECE Flag Count, Down/Up Ratio, Average Packet Size,"
    " Avg Fwd Segment Size, Avg Bwd Segment Size, Fwd Header Length,Fwd Avg Bytes/Bulk,"
    " Fwd Avg Packets/Bulk, Fwd Avg Bulk Rate, Bwd Avg Bytes/Bulk, Bwd Avg Packets/Bulk,"
    "Bwd Avg Bulk Rate,Subflow Fwd Packets, Subflow Fwd Bytes, Subflow Bwd Packets,"
    " Subflow Bwd Bytes,Init_Win_bytes_forward, Init_Win_bytes_backward, act_data_pkt_fwd,"
    " min_seg_size_forward,Active Mean, Active Std, Active Max, Active Min,Idle Mean,"
    " Idle Std, Idle Max, Idle Min, Label"
).split(",")
assert len(CIC_HEADER) == 79


def cic_row(label: str, port: str = "80", rates: tuple[str, str] | None = None) -> list[str]:
    vals = [port] + [str(R.randint(0, 5000)) for _ in range(77)] + [label]
    vals[CIC_HEADER.index(" Fwd Header Length", 40)] = vals[CIC_HEADER.index(" Fwd Header Length")]
    vals[CIC_HEADER.index("Init_Win_bytes_forward")] = "-1"  # "not seen", as the files write it
    if rates:
        vals[CIC_HEADER.index("Flow Bytes/s")], vals[CIC_HEADER.index(" Flow Packets/s")] = rates
    return vals


def write_cic() -> None:
    labels = ["BENIGN"] * 10 + ["DoS Hulk", "DDoS", "PortScan", "Bot", "FTP-Patator",
                                "SSH-Patator", "Infiltration", "Heartbleed", "DoS slowloris"]
    rows = [cic_row(lbl, port=R.choice(["80", "443", "53", "22", "8443"])) for lbl in labels]
    rows[1] = cic_row("BENIGN", rates=("Infinity", "Infinity"))  # zero-duration flow
    rows[2] = cic_row("BENIGN", rates=("NaN", "NaN"))
    body = [",".join(r).encode() for r in rows]
    # Some releases write the en dash as a lone cp1252 byte: not valid UTF-8.
    for name in (b"Web Attack \x96 Brute Force", b"Web Attack \x96 XSS",
                 "Web Attack – Sql Injection".encode()):
        body.append(",".join(cic_row("X")[:-1]).encode() + b"," + name)
    body += [b"," * 78] * 3  # the all-empty rows some files end with
    (HERE / "cicids2017_thursday.csv").write_bytes(
        b"\n".join([",".join(CIC_HEADER).encode(), *body]) + b"\n")

    good = [cic_row("BENIGN"), cic_row("PortScan"), cic_row("BENIGN")]
    inf = cic_row("DDoS")
    inf[CIC_HEADER.index(" Flow IAT Mean")] = "Infinity"  # only the two rate columns may be
    text = cic_row("Bot")
    text[5] = "lots"
    rows = [good[0], inf, good[1], text, good[2], cic_row("BENIGN")[:50]]
    (HERE / "cicids2017_bad.csv").write_text(
        "\n".join([",".join(CIC_HEADER), *(",".join(r) for r in rows)]) + "\n")


if __name__ == "__main__":
    write_nsl()
    write_unsw()
    write_cic()
