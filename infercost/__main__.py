import sys

from infercost.cli.main import main

sys.exit(main())
