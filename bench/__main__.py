"""python -m bench NAME [N] [ROUNDS] [OPTION]  ·  python -m bench all

e2e takes the job stdio modes to compare as a third argument: python -m bench e2e 10000 3 separate,combined,none"""

import importlib
import sys

BENCHES = ["e2e", "claims", "create", "latency", "fanin", "snapshot", "rls", "workers", "idle", "pooler", "stale",
           "maintenance", "vacuum", "cli", "monitoring"]


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__ + "\nbenchmarks: " + ", ".join(BENCHES))
        return
    names = BENCHES if args[0] == "all" else [args[0]]
    extra = [int(a) if a.isdigit() else a for a in args[1:]]
    for name in names:
        if name not in BENCHES:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)}")
        importlib.import_module(f"bench.{name}").main(*extra)


main()
