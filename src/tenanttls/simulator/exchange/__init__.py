"""The simulated Exchange Online admin API (``POST /adminapi/beta/{tenant}/InvokeCommand``)."""
