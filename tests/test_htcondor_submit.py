"""The HTCondor submit descriptions the backend builds, read back by the real htcondor2.Submit
and classad2 parsers; the quoting of arguments and environments; settings that shape them."""

from __future__ import annotations

import classad2
import htcondor2
import pytest

from tes_cts.backends.htcondor import HTCondorBackend
from tes_cts.backends.htcondor_description import (
    JobTemplate,
    condor_arguments,
    condor_environment,
    describe,
    owner_name,
)
from tes_cts.jobfiles import Job
from tes_cts.settings import SettingsError

from .builders import htcondor_backend
from .condor_sim import SUBMIT_COMMANDS, condor_words
from .condor_sim import condor_environment as read_environment

TEMPLATE = JobTemplate(
    service_id="org.example.tes",
    worker_command=("/opt/tes cts/bin/python3", "-m", "tes_cts.backends.htcondor_job"),
    environment={"PATH": "/usr/local/bin:/usr/bin", "DOCKER_HOST": "unix:///run/docker.sock",
                 "NOTE": "it's \"quoted\" and spaced"},
    requirements='TARGET.OpSys == "LINUX"',
    accounting_group="group_tes",
    concurrency_limit="tes_cts",
)


def job(attempt=2, runtime_limit_s=600.0, **resources) -> Job:
    task = {"executors": [{"image": "busybox", "command": ["true"]}],
            "resources": resources or {"cpu_cores": 4, "ram_gb": 3, "disk_gb": 10,
                                       "backend_parameters": {"requirements": 'TARGET.Arch == "X86_64"'}}}
    return Job(task_id="t0abc", attempt=attempt, task=task, run_dir="/var/lib/tes-cts/runs/t0abc/2",
               runtime_limit_s=runtime_limit_s)


def test_the_description_survives_the_real_submit_parser_unchanged():
    description = describe(job(), "basic:alice", TEMPLATE)
    parsed = htcondor2.Submit(description)
    reread = htcondor2.Submit(str(parsed))  # the text form condor_submit would read
    assert dict(reread) == description
    assert set(description) - {k for k in description if k.startswith("MY.")} <= set(SUBMIT_COMMANDS)


def test_expressions_and_job_attributes_are_valid_classad():
    description = describe(job(), "basic:alice", TEMPLATE)
    ad = classad2.ClassAd()
    for key in ("requirements", "periodic_remove"):
        ad[key] = classad2.ExprTree(description[key])
    for key in (k for k in description if k.startswith("MY.")):
        ad[key[3:]] = classad2.ExprTree(description[key])
    assert ad.eval("TesTaskId") == "t0abc" and ad.eval("TesAttempt") == 2
    assert ad.eval("TesService") == "org.example.tes" and ad.eval("TesOwner") == "basic:alice"
    assert ad.eval("TesRuntimeLimit") == 600
    ad.update({"JobStatus": 2, "JobCurrentStartDate": 0})
    assert ad.eval("periodic_remove") is True  # running since 1970: far over its limit
    ad["JobCurrentStartDate"] = classad2.ExprTree("time()")
    assert ad.eval("periodic_remove") is False


def test_what_the_task_asks_for_becomes_requests_and_requirements():
    description = describe(job(), "basic:alice", TEMPLATE)
    assert description["universe"] == "vanilla"
    assert (description["request_cpus"], description["request_memory"], description["request_disk"]) == \
        ("4", "3072", str(10 * 1024 * 1024))
    assert description["requirements"] == '(TARGET.OpSys == "LINUX") && (TARGET.Arch == "X86_64")'
    assert description["accounting_group"] == "group_tes" and description["accounting_group_user"] == "basic_alice"
    assert description["concurrency_limits"] == "tes_cts.basic_alice"


def test_the_worker_gets_its_job_file_and_sends_back_the_result_and_logs():
    description = describe(job(), "", TEMPLATE)
    assert description["initialdir"] == "/var/lib/tes-cts/runs/t0abc/2"
    assert description["transfer_input_files"] == "job.json" and description["transfer_executable"] == "false"
    assert description["transfer_output_files"] == "result.json, logs"
    assert description["when_to_transfer_output"] == "ON_EXIT_OR_EVICT"
    assert description["kill_sig"] == "SIGTERM" and int(description["job_max_vacate_time"]) >= 30
    assert description["executable"] == "/opt/tes cts/bin/python3"
    assert condor_words(description["arguments"]) == ["-m", "tes_cts.backends.htcondor_job", "job.json"]
    assert read_environment(description["environment"]) == TEMPLATE.environment
    assert description["getenv"] == "false"


def test_without_resources_or_limit_only_one_cpu_is_asked_for():
    description = describe(job(runtime_limit_s=None, cpu_cores=None), "", JobTemplate("s", ("/bin/worker",)))
    assert description["request_cpus"] == "1"
    assert not {"request_memory", "request_disk", "requirements", "periodic_remove", "accounting_group",
                "concurrency_limits", "MY.TesRuntimeLimit"} & set(description)


def test_the_quoting_reads_back_as_the_manual_says():
    # The example of the condor_submit manual for `arguments`.
    assert condor_words('"one ""two"" \'spacey \'\'quoted\'\' argument\'"') == ["one", '"two"', "spacey 'quoted' argument"]
    words = ["plain", "two words", "it's", 'say "hi"', "", "tab\there", "'both' \"kinds\""]
    assert condor_words(condor_arguments(words)) == words
    variables = {"A": "1", "B": "x y", "C": "it's", "D": 'say "hi"', "E": ""}
    assert read_environment(condor_environment(variables)) == variables


def test_a_task_requirement_cannot_reach_outside_its_parentheses(settings):
    template = JobTemplate("s", ("/bin/worker",), requirements="TARGET.Trusted")
    backend = htcondor_backend(settings, "/tmp/unused", template, lambda: None, lost_grace_s=600)
    escaping = job(backend_parameters={"requirements": "true) || (true"})
    assert backend.never_fits(escaping) == "backend parameter requirements is not a ClassAd expression: 'true) || (true'"
    spread = job(backend_parameters={"requirements": "TARGET.Memory > 1\n   || TARGET.Cpus > 1"})
    assert describe(spread, "", template)["requirements"] == "(TARGET.Trusted) && (TARGET.Memory > 1 || TARGET.Cpus > 1)"
    assert backend.never_fits(job()) is None


def test_no_value_can_add_a_submit_command():
    with pytest.raises(ValueError, match="environment cannot hold a line break"):
        describe(job(), "", JobTemplate("s", ("/bin/worker",), environment={"X": "1\nqueue 5"}))
    # An owner comes from an identity provider: it is quoted, never taken as submit text.
    description = describe(job(), 'oidc:a"b\nqueue 5', TEMPLATE)
    assert classad2.ExprTree(description["MY.TesOwner"]).eval() == 'oidc:a"b\nqueue 5'
    assert description["accounting_group_user"] == "oidc_a_b_queue_5"
    assert htcondor2.Submit(str(htcondor2.Submit(description))).getQArgs() == ""


def test_owner_names_for_accounting():
    assert owner_name("basic:alice") == "basic_alice"
    assert owner_name("kbase:bob.smith") == "kbase_bob_smith"
    assert owner_name("") == "local"


# --- settings -------------------------------------------------------------------------------


def test_settings_make_the_template_with_secret_files_never_secrets(make_settings, tmp_path):
    from tes_cts.wiring import htcondor_template

    settings = make_settings(backend__kind="htcondor", s3__endpoint_url="http://minio:9000",
                             s3__access_key_id="tes", s3__secret_access_key="very-secret-value",
                             htcondor__s3_secret_files={"default": "/etc/tes-cts/s3-secret"},
                             htcondor__worker_environment={"PATH": "/usr/bin"},
                             htcondor__requirements='TARGET.HasDocker  ==  true')
    template = htcondor_template(settings)
    assert template.environment == {"PATH": "/usr/bin",
                                    "TES_CTS_WORKER_S3_SECRET_FILE__DEFAULT": "/etc/tes-cts/s3-secret"}
    assert template.requirements == "TARGET.HasDocker == true"
    assert "very-secret-value" not in str(htcondor2.Submit(describe(job(), "", template)))


@pytest.mark.parametrize("overrides,words", [
    ({"s3__endpoint_url": "http://minio:9000", "s3__secret_access_key": "k"}, ["htcondor.s3_secret_files.default"]),
    ({"htcondor__requirements": "TARGET.Memory >"}, ["htcondor.requirements", "not a ClassAd expression"]),
    ({"htcondor__worker_environment": {"NOT A NAME": "x"}}, ["htcondor.worker_environment"]),
])
def test_bad_htcondor_settings_are_refused_at_start(make_settings, overrides, words):
    from tes_cts.wiring import check_storage

    settings = make_settings(backend__kind="htcondor", **overrides)
    with pytest.raises(SettingsError) as raised:
        check_storage(settings)
    for word in words:
        assert word in str(raised.value)


def test_settings_open_an_htcondor_backend_that_says_when_it_finds_no_schedd(make_settings):
    from tes_cts.wiring import open_backend, poller_config

    settings = make_settings(backend__kind="htcondor", htcondor__unmatched_timeout="PT5M")
    backend = open_backend(settings)
    assert isinstance(backend, HTCondorBackend) and backend.lost_grace_s == 600
    assert poller_config(settings).unmatched_wait_s == 300
    # No HTCondor daemon runs here: the real htcondor2 bindings say so, and nothing is submitted.
    assert backend.engine_problem().startswith("the HTCondor schedd cannot be reached or refused `query`: ")
    named = open_backend(make_settings(backend__kind="htcondor", htcondor__schedd_name="tes-cts@condor",
                                       htcondor__collector="127.0.0.1:9"))
    assert "collector" in named.engine_problem().lower()
