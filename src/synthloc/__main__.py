import sys

from synthloc.cli import main

sys.exit(main())
