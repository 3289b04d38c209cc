"""The SSH compute config is typed: typos and bad values fail before anything runs."""

from __future__ import annotations


def test_typo_in_an_ssh_option_fails_at_composition(mltrain, cli_json):
    proc = mltrain("+compute=ssh", "compute.host_keys=reject")
    assert proc.returncode != 0 and "host_keys" in proc.stderr and "host_key_policy" in proc.stderr, proc.output
    proc = mltrain("+compute=ssh", "compute.hosts=[{host:a,slot:2}]")
    assert proc.returncode != 0 and "slot" in proc.stderr, proc.output
    assert cli_json("runs", "list") == []


def test_empty_pool_and_bad_policy_are_clear_errors(mltrain, cli_json):
    proc = mltrain("+compute=ssh")
    assert proc.returncode != 0 and "compute.hosts is empty" in proc.stderr, proc.output
    proc = mltrain("+compute=ssh", "compute.hosts=[{host:a}]", "compute.host_key_policy=yes")
    assert proc.returncode != 0 and "accept-new" in proc.stderr, proc.output
    assert cli_json("runs", "list") == []
