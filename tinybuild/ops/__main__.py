"""``python -m tinybuild.ops``: rewrite the op table of docs/ops.md from the registry."""
from . import OPS_DOC, write_ops_table

write_ops_table()
print(f"wrote the op table of {OPS_DOC}")
