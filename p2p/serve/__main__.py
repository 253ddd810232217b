"""python -m p2p.serve --workdir=RUN: the p2p-serve command."""

from p2p.serve.cli import run

if __name__ == "__main__":
  run()
