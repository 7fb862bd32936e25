"""``python -m imager``: the boot-environment agent, as the initramfs runs it."""
import sys

from imager.agent import main

sys.exit(main())
