"""image-inventory: keeps a PostgreSQL inventory of cloud machine images in step with the
providers' image listings, with status history, snapshot diffs and flags for images that
were deprecated, ceased, deleted or vanished. See README.md and docs/."""

__version__ = "0.1.0"
