import sys

from ppgen.cli import main

sys.exit(main())
