"""`python -m p2p.data.synthetic --out DIR --train N --val M --seed S`."""

import sys

from p2p.data.synthetic import cli

cli(sys.argv[1:])
