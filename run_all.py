"""Run every oplab study (or --only some), then write results/ and its scorecard.

    python run_all.py --replicate     # the whole suite at the quick budget: the committed report in results/
    python run_all.py --only wn_vs_bn --seeds 10-14 --replicate   # other seeds: writes results/runs/seeds-10-14/
    python run_all.py --report-only --replicate   # rebuild the report from stored records
    python run_all.py compare results results/runs/seeds-10-14   # two result folders part by part
    python run_all.py --help

Only a run that would reproduce the committed report (each study's default seeds, with --replicate)
rewrites results/; another run at the default folder writes to results/runs/<name>/ and says so.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:  # `oplab compare A B`: two result folders part by part
        from oplab import compare

        return compare.main(argv[1:], prog="run_all.py compare")
    from oplab import cli
    from studies import all_studies

    return cli.main(all_studies(), argv, prog="run_all.py")


if __name__ == "__main__":
    sys.exit(main())
