import sys

from fedledger.cli import main

sys.exit(main())
