"""Run every oplab study (or --only some), then write results/ and its scorecard.

    python run_all.py                 # the whole suite at the quick budget
    python run_all.py --only wn_vs_bn --seeds 10,11,12
    python run_all.py --report-only   # rebuild the report from stored records
    python run_all.py --help
"""

import sys


def main(argv: list[str] | None = None) -> int:
    from oplab import cli
    from studies import all_studies

    return cli.main(all_studies(), argv, prog="run_all.py")


if __name__ == "__main__":
    sys.exit(main())
