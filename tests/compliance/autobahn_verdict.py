"""Read an Autobahn|Testsuite index.json; exit 1 unless every case is OK or INFORMATIONAL.

Stricter than the suite's own summary: NON-STRICT and UNIMPLEMENTED count as failures too.
"""

import collections
import json
import sys

PASS = ("OK", "INFORMATIONAL")


def main(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    bad = 0
    for agent, cases in index.items():
        behavior = collections.Counter(v["behavior"] for v in cases.values())
        closing = collections.Counter(v["behaviorClose"] for v in cases.values())
        print(
            f"{agent}: {len(cases)} cases; behavior {dict(sorted(behavior.items()))}; "
            f"close {dict(sorted(closing.items()))}"
        )
        for case in sorted(cases, key=lambda c: tuple(int(x) for x in c.split("."))):
            verdict = cases[case]
            if verdict["behavior"] not in PASS or verdict["behaviorClose"] not in PASS:
                print(f"  {case}: {verdict['behavior']} / {verdict['behaviorClose']}")
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
