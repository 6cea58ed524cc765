#!/usr/bin/env python
"""Entry point: `python run_search.py --trials 50`; `python run_search.py -h` lists the commands."""

import sys

from search.cli import main

if __name__ == "__main__":
    sys.exit(main())
