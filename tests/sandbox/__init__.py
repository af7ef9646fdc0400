"""The local sandbox behind ``make dev`` (see ``run.py``)."""
