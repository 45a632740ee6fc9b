"""The dashboard: its pages as the server renders them (in process), then in a real headless
browser against a live `tes-cts serve` with its poller and Docker: under `none`, under `basic`
(credentials in the URL: the browser's own answer to the challenge, and a header set through
CDP) and under `bearer` (the token field). The browser tests save screenshots of both pages in
a directory they print (DASHBOARD_SCREENSHOTS chooses it)."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from html import unescape
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from tes_cts.auth.hashing import hash_password, token_digest
from tes_cts.dashboard import pages
from tes_cts.model.record import TaskRecord, new_task_id
from tes_cts.model.states import STATE_OF_PHASE, Phase
from tes_cts.tasks.lifecycle import move
from tes_cts.wiring import build_app

from .auth_servers import basic_auth, bearer, toml_table
from .browser import screenshot, script_errors, start_browser, wait_until
from .docker_env import docker_env
from .helpers import echo_task

API = "/ga4gh/tes/v1"
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}
XSS_NAME = "<script>alert('name')</script>"


def rows(html: str) -> list[str]:
    """The task ids the list page shows, in order."""
    return re.findall(r'<tr data-task-id="([^"]+)"', html)


def create(client, body, headers=None) -> str:
    response = client.post(f"{API}/tasks", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def database_of(app):
    return app.app.extensions["tes_cts"].service.database


# --- the pages as the server renders them --------------------------------------------------------


def test_root_links_the_dashboard_and_the_api_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'href="/dashboard"' in page.text and f'href="{API}/ui/"' in page.text
    assert client.get("/dashboard").status_code == 200


def test_the_list_shows_every_task_with_counts_and_each_filter_narrows_it(client, app):
    alpha = create(client, echo_task(name="align.S1", tags={"project": "wgs", "sample": "S1"}))
    beta = create(client, echo_task(name="align.S2", tags={"project": "wgs"}))
    gamma = create(client, echo_task(name="call.S1", tags={"project": "rna"}))
    db = database_of(app)
    record = db.get(gamma)
    for phase in (Phase.PREFLIGHT, Phase.SUBMITTED, Phase.STAGING_IN, Phase.RUNNING, Phase.STAGING_OUT, Phase.COMPLETE):
        record = move(db, record, phase, f"test moved it to {phase}")

    page = client.get("/dashboard").text
    assert rows(page) == [gamma, beta, alpha]  # newest first
    assert re.search(r"all\s*<b>3</b>", page)
    assert re.search(r"QUEUED <b>2</b>", page) and re.search(r"COMPLETE <b>1</b>", page)
    assert "Owner</th>" not in page  # the local user is no admin: no owner column

    assert rows(client.get("/dashboard", params={"state": "COMPLETE"}).text) == [gamma]
    assert rows(client.get("/dashboard", params={"state": "queued"}).text) == [beta, alpha]
    assert rows(client.get("/dashboard", params={"name_prefix": "align."}).text) == [beta, alpha]
    assert rows(client.get("/dashboard", params={"tag": "project=wgs"}).text) == [beta, alpha]
    assert rows(client.get("/dashboard", params={"tag": "sample"}).text) == [alpha]
    assert rows(client.get("/dashboard", params={"tag": "project=wgs", "name_prefix": "align.S2"}).text) == [beta]
    empty = client.get("/dashboard", params={"name_prefix": "nothing"}).text
    assert rows(empty) == [] and "No tasks match these filters." in empty
    # A filter the browser submits with every field, the empty ones too.
    assert rows(client.get("/dashboard?state=&name_prefix=call&tag=").text) == [gamma]


def test_pages_of_the_list_follow_each_other(client):
    ids = [create(client, echo_task(name=f"paged-{n}")) for n in range(5)][::-1]
    first = client.get("/dashboard", params={"page_size": 2}).text
    assert rows(first) == ids[:2] and "First page" not in first
    seen = rows(first)
    page = first
    while 'rel="next"' in page:
        next_link = unescape(re.search(r'<a href="([^"]+)" rel="next">', page).group(1))
        page = client.get(next_link).text
        assert "First page" in page
        seen += rows(page)
    assert seen == ids


@pytest.mark.parametrize("query, field", [("state=DONE", "state"), ("page_token=nonsense", "page_token"),
                                          ("page_size=0", "page_size"), ("page_size=many", "page_size")])
def test_a_bad_filter_is_a_400_page_naming_it(client, query, field):
    page = client.get(f"/dashboard?{query}")
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert f"{field}: " in page.text


def test_user_text_is_escaped_everywhere_and_pages_allow_no_foreign_script(client, app):
    evil_tag = '"><img src=x onerror=alert(1)>'
    task_id = create(client, echo_task(name=XSS_NAME, description="<b>bold</b>", tags={"<k>": evil_tag}))
    db = database_of(app)
    record = db.get(task_id)
    record = move(db, record, Phase.PREFLIGHT, "claimed <i>")
    record = move(db, record, Phase.SUBMITTED, "submitted", change=lambda r: r.logs.append({
        "start_time": "2026-01-01T00:00:00Z", "metadata": {"backend_job_id": "<job>"}, "system_logs": ["<svg onload=x>"],
        "logs": [{"exit_code": 0, "stdout": "<script>alert('log')</script>", "stderr": "</pre><script>x()</script>"}],
        "outputs": []}))
    for page in (client.get("/dashboard"), client.get(f"/dashboard/tasks/{task_id}")):
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img src=x" not in page.text and "<svg" not in page.text
        assert "<b>bold</b>" not in page.text and "</pre><script>" not in page.text
        assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
    task_page = client.get(f"/dashboard/tasks/{task_id}").text
    assert "&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;" in task_page
    assert "claimed &lt;i&gt;" in task_page and "&lt;job&gt;" in task_page


def retried_record() -> TaskRecord:
    """A task that ran twice: its first worker died, the second attempt completed; one S3 input
    checked at preflight, one output stored with its CRC64NVME."""
    record = TaskRecord(
        id=new_task_id(), owner="", created_us=1_767_225_600_000_000, phase=Phase.CREATED,
        task={**echo_task(name="retried"), "inputs": [{"path": "/in/reads.fq", "url": "s3://lab/reads.fq"},
                                                      {"path": "/in/note", "content": "hello"}],
              "outputs": [{"path": "/out/count", "url": "s3://lab/count"}],
              "resources": {"cpu_cores": 2, "ram_gb": 4.0, "backend_parameters": {"runtime": "PT1H"}}},
        verified_inputs={"0": [{"url": "s3://lab/reads.fq", "size": 3_145_728, "etag": '"e"', "crc64nvme": "AAECAwQFBgc="}]},
    )
    moves = [
        ("2026-01-01T00:00:00.000000Z", Phase.CREATED, "task accepted"),
        ("2026-01-01T00:00:00.500000Z", Phase.PREFLIGHT, "attempt 1 claimed by poller p1"),
        ("2026-01-01T00:00:01.000000Z", Phase.SUBMITTED, "submitted to the local backend as job vm/101"),
        ("2026-01-01T00:00:02.000000Z", Phase.STAGING_IN, "worker started: staging inputs"),
        ("2026-01-01T00:00:03.000000Z", Phase.CREATED, "attempt 1 failed: the worker died; retrying as attempt 2 of 3"),
        ("2026-01-01T00:00:04.000000Z", Phase.PREFLIGHT, "attempt 2 claimed by poller p1"),
        ("2026-01-01T00:00:05.000000Z", Phase.SUBMITTED, "submitted to the local backend as job vm/202"),
        ("2026-01-01T00:00:06.000000Z", Phase.STAGING_IN, "worker started: staging inputs"),
        ("2026-01-01T00:00:07.000000Z", Phase.RUNNING, "running executor 0"),
        ("2026-01-01T00:00:09.000000Z", Phase.STAGING_OUT, "executors finished: staging outputs"),
        ("2026-01-01T00:01:40.000000Z", Phase.COMPLETE, ""),
    ]
    record.history = [{"state": STATE_OF_PHASE[phase].value, "phase": phase.value, "time": at, "reason": reason}
                      for at, phase, reason in moves]
    record.phase = Phase.COMPLETE
    record.logs = [
        {"start_time": "2026-01-01T00:00:01Z", "end_time": "2026-01-01T00:00:03Z", "system_logs": ["the worker died"],
         "metadata": {"backend": "local", "attempt": "1", "backend_job_id": "vm/101"}, "logs": [], "outputs": []},
        {"start_time": "2026-01-01T00:00:05Z", "end_time": "2026-01-01T00:01:40Z",
         "metadata": {"backend": "local", "attempt": "2", "backend_job_id": "vm/202", "host": "node7",
                      "crc64nvme:s3://lab/count": "D3gOhIHSoh8=", "result.message": "counted 42 reads",
                      "result.status": "200", "result.metric.reads": "42"},
         "logs": [{"start_time": "2026-01-01T00:00:07Z", "end_time": "2026-01-01T00:00:09Z", "exit_code": 0,
                   "stdout": "42 reads\n", "stderr": "a warning\n"}],
         "outputs": [{"path": "/out/count", "url": "s3://lab/count", "size_bytes": "2048"}]},
    ]
    return record


def test_the_task_page_shows_attempts_side_by_side_executors_files_and_resources(client, app):
    record = retried_record()
    database_of(app).insert(record)
    page = client.get(f"/dashboard/tasks/{record.id}").text
    timeline = page[page.index('id="timeline"'):page.index('id="executors"')]
    first, second = timeline.split("Attempt 2")
    assert "Attempt 1" in first and "job vm/101" in first and "retrying as attempt 2 of 3" in first
    assert "the worker died" in first and "job vm/202" not in first
    assert "attempt 2 claimed" in second and "job vm/202" in second and "COMPLETE" in second
    assert "<code>vm/202</code>" in second and "node7" in second
    for key, value in (("result.message", "counted 42 reads"), ("result.status", "200"), ("result.metric.reads", "42")):
        assert f"<dt>{key}</dt><dd>{value}</dd>" in second  # what the task said of itself (TES_RESULT_FILE)
    assert "00:00:03.000" in first and "+1.0s" in first and "+1m31s" in second  # each move's time, and since the last
    executors = page[page.index('id="executors"'):page.index('id="files"')]
    assert "Attempt 2: exit code <span class=\"exit-code\">0</span>" in executors
    assert "42 reads" in executors and "a warning" in executors
    assert f'data-log="{API}/tasks/{record.id}/logs/1/0/stdout"' in executors  # attempts from 0, as the logs endpoint
    files = page[page.index('id="files"'):page.index('id="resources"')]
    assert "3.0 MiB (3,145,728 bytes)" in files and "AAECAwQFBgc=" in files  # what preflight checked
    assert "inline content, 5 B" in files
    assert "2.0 KiB (2,048 bytes)" in files and "D3gOhIHSoh8=" in files  # what was stored, with its checksum
    resources = page[page.index('id="resources"'):]
    assert "cpu_cores" in resources and "PT1H" in resources
    assert "Duration</dt><dd>1m40s" in page
    assert 'id="cancel"' not in page  # a finished task has nothing to cancel


def test_a_claim_that_lost_its_lease_is_no_new_attempt():
    record = retried_record()
    lost = [{"state": "QUEUED", "phase": "preflight", "time": "2026-01-01T00:00:00.100000Z", "reason": "claimed"},
            {"state": "QUEUED", "phase": "created", "time": "2026-01-01T00:00:00.200000Z", "reason": "lease expired"}]
    record.history[1:1] = lost
    attempts = pages.task_page(record, now_us=0).attempts
    assert [len(a.entries) for a in attempts] == [7, 6]
    assert [a.backend_job_id for a in attempts] == ["vm/101", "vm/202"]


def test_an_unknown_task_is_a_404_page(client):
    page = client.get("/dashboard/tasks/nosuchtask")
    assert page.status_code == 404 and "no task with id &#39;nosuchtask&#39;" in page.text


@pytest.fixture
def basic_app(make_settings):
    settings = make_settings(auth__providers=["basic"], auth__admins=["basic:root"], auth__basic__users={
        name: hash_password(f"{name}-pw") for name in ("alice", "bob", "root")})
    app = build_app(settings)
    yield app
    database_of(app).close()


def test_under_basic_a_page_without_credentials_makes_the_browser_ask(basic_app):
    with basic_app.test_client() as client:
        for headers in ({}, basic_auth("alice", "wrong"), {"Authorization": "Bearer some-token"}):
            page = client.get("/dashboard", headers=headers)
            assert page.status_code == 401
            assert page.headers["www-authenticate"] == 'Basic realm="tes-cts", charset="UTF-8"'
            assert page.headers["content-type"].startswith("text/html")
            assert "your browser asks for them" in page.text and 'id="token-form"' not in page.text
        assert "basic: wrong user name or password" in client.get("/dashboard", headers=basic_auth("alice", "x")).text
        assert client.get("/").status_code == 200  # the start page is public, like the docs


def test_under_basic_each_user_sees_their_own_tasks_and_an_admin_every_owner(basic_app):
    alice, bob, root = (basic_auth(name, f"{name}-pw") for name in ("alice", "bob", "root"))
    with basic_app.test_client() as client:
        hers = create(client, echo_task(name="hers"), alice)
        his = create(client, echo_task(name="his"), bob)
        page = client.get("/dashboard", headers=alice).text
        assert rows(page) == [hers] and re.search(r"all\s*<b>1</b>", page) and "basic:alice" in page
        assert "Owner</th>" not in page
        assert client.get(f"/dashboard/tasks/{his}", headers=alice).status_code == 404
        assert client.get(f"/dashboard/tasks/{hers}", headers=alice).status_code == 200
        assert client.get("/dashboard", params={"owner": "basic:bob"}, headers=alice).status_code == 403

        everyone = client.get("/dashboard", headers=root).text
        assert rows(everyone) == [his, hers] and "Owner</th>" in everyone and "basic:bob</a>" in everyone
        assert re.search(r"all\s*<b>2</b>", everyone) and "basic:root (admin)" in everyone
        assert rows(client.get("/dashboard", params={"owner": "basic:bob"}, headers=root).text) == [his]
        assert "basic:alice" in client.get(f"/dashboard/tasks/{hers}", headers=root).text


def test_under_bearer_a_page_without_a_token_offers_the_token_field(make_settings):
    settings = make_settings(auth__providers=["bearer"], auth__bearer__tokens={"ci": token_digest("ci-token")})
    app = build_app(settings)
    with app.test_client() as client:
        page = client.get("/dashboard")
        assert page.status_code == 401 and page.headers["www-authenticate"] == 'Bearer realm="tes-cts"'
        assert 'id="token-form"' in page.text and "a service account token" in page.text
        assert "your browser asks" not in page.text
        assert client.get("/dashboard", headers=bearer("ci-token")).status_code == 200
        assert client.get("/dashboard", headers=bearer("other")).status_code == 401
    database_of(app).close()


# --- in a real browser, against a live server --------------------------------------------------


def click(driver, css) -> None:
    find(driver, css).click()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory, pytestconfig):
    """Where the screenshots go: DASHBOARD_SCREENSHOTS, else a directory of the run's own."""
    chosen = os.environ.get("DASHBOARD_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("dashboard-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    with pytestconfig.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\ndashboard screenshots: {directory}")
    return directory


PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
ALICE, BOB = (("alice", PASSWORDS["alice"]), ("bob", PASSWORDS["bob"]))
TOKEN = "ci-token"


@pytest.fixture(scope="module")
def live(live_servers, docker_image):
    """Three live servers (`none` and `basic` with their poller and Docker, `bearer` without a
    poller), each with the tasks its tests look at, and a browser: all started at once, since
    each takes seconds to boot."""
    engine = {"DOCKER_HOST": docker_env()["DOCKER_HOST"], "TES_CTS_POLLER__INTERVAL_S": "0.2"}

    def none():
        server = live_servers.start(engine, poller=True, workers=1)
        return server, {
            "alpha": submit(server, {"name": f"dash-alpha {XSS_NAME}", "tags": {"project": "wgs"}, "executors": [
                run("sh", "-c", "echo out-line; echo err-line >&2; echo '<script>alert(1)</script>'")]}),
            "beta": submit(server, {"name": "dash-beta", "tags": {"project": "rna"}, "executors": [run("sh", "-c", "exit 3")]}),
        }

    def basic():
        server = live_servers.start({**engine, "TES_CTS_AUTH__PROVIDERS": '["basic"]', "TES_CTS_AUTH__BASIC__USERS":
                                     toml_table({name: hash_password(pw) for name, pw in PASSWORDS.items()})},
                                    poller=True, workers=1)
        return server, {
            "echo": submit(server, {"name": "alice-echo", "executors": [run("echo", "alice was here")]}, ALICE),
            "long": submit(server, {"name": "alice-long", "executors": [run("sleep", "300")]}, ALICE),
            "bobs": submit(server, {"name": "bob-task", "executors": [run("true")]}, BOB),
        }

    def bearer_only():
        server = live_servers.start({"TES_CTS_AUTH__PROVIDERS": '["bearer"]',
                                     "TES_CTS_AUTH__BEARER__TOKENS": toml_table({"ci": token_digest(TOKEN)})}, workers=1)
        return server, {"first": submit(server, echo_task(name="queued-one"), headers=bearer(TOKEN))}

    with ThreadPoolExecutor(4) as pool:
        started = {name: pool.submit(start) for name, start in
                   (("none", none), ("basic", basic), ("bearer", bearer_only), ("browser", start_browser))}
        ready = {name: future.result() for name, future in started.items()}
    yield SimpleNamespace(**ready)
    ready["browser"].quit()


def submit(server, body, auth=None, headers=None) -> str:
    response = requests.post(server.tasks, json=body, auth=auth, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def state_of(server, task_id, auth=None) -> str:
    return requests.get(f"{server.tasks}/{task_id}", auth=auth, timeout=10).json()["state"]


def wait_for_state(server, task_id, states, auth=None, timeout=30) -> str:
    return wait_until(lambda: (s := state_of(server, task_id, auth)) in states and s, timeout,
                      f"task {task_id} reaching {sorted(states)}")


def run(*command) -> dict:
    return {"image": "tes-cts-test/busybox:1", "command": list(command)}


def find(driver, css):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def text_of(driver, css) -> str:
    return find(driver, css).text


def list_ids(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.get_attribute("data-task-id") for row in driver.find_elements(By.CSS_SELECTOR, "#task-list tr[data-task-id]")]


def row_state(driver, task_id) -> str:
    return text_of(driver, f'tr[data-task-id="{task_id}"] .state')


def wait_live(driver) -> None:
    wait_until(lambda: text_of(driver, "#live") == "live", 15, "the event stream connecting")


def confirm_cancel(driver) -> None:
    find(driver, "#cancel").click()
    wait_until(lambda: driver.switch_to.alert, 5, "the confirmation").accept()


def no_alert(driver) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_the_list_shows_api_tasks_and_filters_narrow_it(live, screenshots):
    server, tasks, browser = live.none[0], live.none[1], live.browser
    for task_id in tasks.values():
        wait_for_state(server, task_id, TERMINAL)
    browser.get(f"{server.url}/dashboard")
    assert set(tasks.values()) <= set(list_ids(browser))
    assert row_state(browser, tasks["alpha"]) == "COMPLETE" and row_state(browser, tasks["beta"]) == "EXECUTOR_ERROR"
    assert XSS_NAME in text_of(browser, f'tr[data-task-id="{tasks["alpha"]}"] .name') and no_alert(browser)
    assert text_of(browser, '.count[data-state="EXECUTOR_ERROR"] b') == "1"
    wait_live(browser)
    screenshot(browser, screenshots / "none-task-list.png")

    field = find(browser, 'input[name="name_prefix"]')
    field.send_keys("dash-alpha")
    field.submit()
    wait_until(lambda: "name_prefix=dash-alpha" in browser.current_url, 10, "the filter's page loading")
    assert list_ids(browser) == [tasks["alpha"]]

    find(browser, '.count[data-state="EXECUTOR_ERROR"]').click()  # a state's count is its filter
    wait_until(lambda: "state=EXECUTOR_ERROR" in browser.current_url, 10, "the state's page loading")
    assert list_ids(browser) == [tasks["beta"]]
    assert script_errors(browser) == []


def test_a_task_created_after_the_page_loaded_appears_and_changes_state_without_a_reload(live):
    server, browser = live.none[0], live.browser
    browser.get(f"{server.url}/dashboard")
    wait_live(browser)
    browser.execute_script("window.loadedOnce = true")
    task_id = submit(server, {"name": "dash-live", "executors": [run("sh", "-c", "sleep 1")]})
    wait_until(lambda: task_id in list_ids(browser), 10, "the new task showing in the list")
    wait_until(lambda: row_state(browser, task_id) == "COMPLETE", 30, "the task's COMPLETE showing in the list")
    assert browser.execute_script("return window.loadedOnce") is True  # the same page all along


def test_a_task_page_shows_its_timeline_and_its_logs(live, screenshots):
    server, tasks, browser = live.none[0], live.none[1], live.browser
    wait_for_state(server, tasks["alpha"], TERMINAL)
    browser.get(f"{server.url}/dashboard/tasks/{tasks['alpha']}")
    timeline = text_of(browser, "#timeline")
    for state in ("QUEUED", "INITIALIZING", "RUNNING", "COMPLETE"):
        assert state in timeline
    assert "task accepted" in timeline and "running executor 0" in timeline and "Backend job" in timeline
    executors = text_of(browser, "#executors")
    assert "exit code 0" in executors and "out-line" in executors and "err-line" in executors
    assert "<script>alert(1)</script>" in executors and no_alert(browser)

    stdout = '[data-log$="/logs/0/0/stdout"]'
    find(browser, f'{stdout} [data-log-page="first"]').click()
    wait_until(lambda: re.match(r"full log|no full log", text_of(browser, f"{stdout} .log-range")), 10,
               "the full log's first page")
    assert "out-line" in text_of(browser, f"{stdout} pre")  # the whole log, or the tail where there is none
    screenshot(browser, screenshots / "none-task-page.png")
    assert script_errors(browser) == []


def test_the_cancel_button_cancels_a_long_task(live):
    server, browser = live.none[0], live.browser
    task_id = submit(server, {"name": "dash-long", "executors": [run("sleep", "300")]})
    wait_for_state(server, task_id, {"RUNNING"})
    browser.get(f"{server.url}/dashboard/tasks/{task_id}")
    wait_live(browser)
    confirm_cancel(browser)
    assert wait_for_state(server, task_id, TERMINAL) == "CANCELED"
    wait_until(lambda: text_of(browser, "#task-state") == "CANCELED", 10, "the page showing CANCELED")
    assert "Cancel task" not in text_of(browser, "#summary") and "CANCELING" in text_of(browser, "#timeline")


def test_under_basic_a_user_sees_only_their_tasks_and_cancels_from_the_page(live, screenshots):
    server, tasks = live.basic
    wait_for_state(server, tasks["echo"], TERMINAL, ALICE)
    wait_for_state(server, tasks["long"], {"RUNNING"}, ALICE)
    driver = start_browser()
    try:
        # Credentials in the URL: the first answer is the 401 challenge, which the browser answers.
        driver.get(server.url.replace("http://", "http://alice:alice-pw@") + "/dashboard")
        assert set(list_ids(driver)) == {tasks["echo"], tasks["long"]} and "bob-task" not in driver.page_source
        assert "basic:alice" in text_of(driver, ".who")
        wait_live(driver)  # the event stream goes with the credentials the browser keeps
        screenshot(driver, screenshots / "basic-task-list.png")

        driver.get(f"{server.url}/dashboard?name_prefix=alice-e")
        assert list_ids(driver) == [tasks["echo"]]

        driver.get(f"{server.url}/dashboard/tasks/{tasks['echo']}")
        assert "task accepted" in text_of(driver, "#timeline") and "alice was here" in text_of(driver, "#executors")

        driver.get(f"{server.url}/dashboard/tasks/{tasks['long']}")
        wait_live(driver)
        confirm_cancel(driver)
        assert wait_for_state(server, tasks["long"], TERMINAL, ALICE) == "CANCELED"
        wait_until(lambda: text_of(driver, "#task-state") == "CANCELED", 10, "the page showing CANCELED")

        driver.get(f"{server.url}/dashboard/tasks/{tasks['bobs']}")
        assert "Not Found" in driver.title and "bob-task" not in driver.page_source
        assert script_errors(driver) == []
    finally:
        driver.quit()

    # The same through a header on every request the browser makes (here bob's).
    driver = start_browser(headers=basic_auth(*BOB))
    try:
        driver.get(f"{server.url}/dashboard")
        assert list_ids(driver) == [tasks["bobs"]] and "basic:bob" in text_of(driver, ".who")
        wait_live(driver)
    finally:
        driver.quit()


def test_under_bearer_the_token_field_signs_the_tab_in(live):
    (server, tasks), driver = live.bearer, live.browser
    driver.get(f"{server.url}/dashboard")
    assert "Sign in" in driver.title
    find(driver, "#token").send_keys("wrong-token")
    find(driver, "#token-form button").click()
    wait_until(lambda: text_of(driver, "#notice") == "The token was not accepted.", 10, "the refusal")
    find(driver, "#token").send_keys(TOKEN)
    find(driver, "#token-form button").click()
    wait_until(lambda: list_ids(driver) == [tasks["first"]], 10, "the list, fetched with the token")
    assert driver.execute_script("return sessionStorage.getItem('tes-cts.token')") == TOKEN
    assert driver.execute_script("return localStorage.length") == 0 and driver.get_cookies() == []
    wait_live(driver)
    second = submit(server, echo_task(name="queued-two"), headers=bearer(TOKEN))
    wait_until(lambda: list_ids(driver) == [second, tasks["first"]], 10, "the new task showing in the list")

    find(driver, f'tr[data-task-id="{tasks["first"]}"] a.name').click()  # fetched with the token, not navigated to
    wait_until(lambda: text_of(driver, "#task-state") == "QUEUED", 10, "the task's page")
    confirm_cancel(driver)
    wait_until(lambda: text_of(driver, "#task-state") == "CANCELED", 10, "the page showing CANCELED")
    assert requests.get(f"{server.tasks}/{tasks['first']}", headers=bearer(TOKEN), timeout=10).json()["state"] == "CANCELED"

    driver.refresh()  # a reload keeps the tab signed in
    wait_until(lambda: text_of(driver, "#task-state") == "CANCELED", 10, "the page after a reload")
    find(driver, "#forget-token").click()
    wait_until(lambda: "Sign in" in driver.title, 10, "the sign-in page again")
    assert driver.execute_script("return sessionStorage.length") == 0
    assert script_errors(driver) == []
