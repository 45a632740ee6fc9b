"""The command line for people: `tes-cts task ...`, `tes-cts run`, `tes-cts storage ...`.

It speaks to any TES server through the TES API and tes-cts's documented extensions only (never
through the server's own modules), and to S3 through `tes_cts.storage` (CRC64NVME on every upload,
verified downloads). Each `*_cmd.py` module declares its verbs (`register`) and imports what it
needs only when a verb runs, so that `tes-cts worker` starts as fast without them.
"""
