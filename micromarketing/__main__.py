import sys

from micromarketing.cli import main

sys.exit(main())
