"""schemathesis generates requests from the OpenAPI document a live `tes-cts serve` serves (valid
ones, and the near misses of its coverage phase) and sends them all: none may be answered with a
5xx, the mark of an input the service did not expect."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ST = str(Path(sys.executable).parent / "st")


@pytest.mark.live
def test_no_generated_request_gets_a_server_error(live_servers, tmp_path):
    with live_servers.start(cwd=tmp_path) as server:
        run = subprocess.run(
            # The event stream's answer never ends: its odd parameters are tested in test_event_stream.
            [ST, "run", f"{server.url}/ga4gh/tes/v1/openapi.json", "--checks", "not_a_server_error",
             "--exclude-operation-id", "StreamEvents", "--max-examples", "40", "--seed", "1", "--no-color"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    generated = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert generated and generated[1] == generated[2] and int(generated[1]) > 500, summary
