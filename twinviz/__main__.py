"""`python -m twinviz …` runs the command-line interface."""
import sys

from twinviz.cli import main

if __name__ == "__main__":
    sys.exit(main())
