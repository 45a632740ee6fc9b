"""Prometheus metrics: what the service does, counted where it happens and shown at `/metrics`.

Several processes count (the gunicorn workers, the poller), so their values go to files in
`<work_dir>/metrics` that a scrape merges (prometheus_client's multiprocess mode, set up by
`process.py` when a command starts). Code that counts calls `record.py`, which loads
prometheus_client only at the first count, once the process is set up; the instruments
themselves, each named once, are in `instruments.py`; what a scrape shows, the store's counts
included (tasks per state, webhook dead letters, read at scrape time), in `exposition.py`.

A task's worker records nothing itself (each attempt is a process of its own, and every process
leaves files): it puts what it measured in its result, and the poller counts that here.
"""
