"""The inventory: a TOML file describing the cluster, validated on load into runner.model's types.

``load_inventory`` (``inventory.py``, the sections and what they mean) is the
one entry point. It reads each table through ``table.py`` (typed reads that
collect every problem instead of raising) and checks single values with
``values.py`` (the grammar of a value, and the limits on numbers).
"""

from runner.config.inventory import load_inventory
from runner.config.table import SECTIONS

__all__ = ["SECTIONS", "load_inventory"]
