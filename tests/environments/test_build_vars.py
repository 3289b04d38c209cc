"""Which variables of ``environment.env_vars`` an environment's builds get (``PIP_*``, ``UV_*``, the
proxies) and which of them make the environment what it is (not the proxies)."""

from __future__ import annotations

import pytest

from mltrain.compute.configs import redact_urls
from mltrain.environments.docker import dockerfile
from mltrain.environments.resolve import ResolvedEnvironment
from mltrain.environments.spec import EnvSpec


def _env(env_vars: dict[str, str], build: str = "venv") -> ResolvedEnvironment:
    node = {"name": "p", "build": build, "pip": ["six==1.17.0"], "env_vars": env_vars}
    if build == "docker":
        node["docker"] = {"base_image": "base:1"}
    return ResolvedEnvironment(EnvSpec.from_config(node), "six==1.17.0\n")


def test_proxies_reach_builds_in_both_spellings_and_leave_the_environment_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROXY_PASSWORD", "s3cret")
    proxied = _env(
        {
            "HTTPS_PROXY": "http://me:${oc.env:PROXY_PASSWORD}@proxy:3128",
            "no_proxy": "localhost",
            "ALL_PROXY": "socks5h://proxy:1080",
            "all_proxy": "socks5h://other:1080",  # both spellings written: each as written
            "UV_HTTP_TIMEOUT": "60",
            "OMP_NUM_THREADS": "1",
        }
    )
    assert proxied.spec.build_env == {
        "HTTPS_PROXY": "http://me:s3cret@proxy:3128",
        "https_proxy": "http://me:s3cret@proxy:3128",  # pip prefers this spelling, uv the other
        "no_proxy": "localhost",
        "NO_PROXY": "localhost",
        "ALL_PROXY": "socks5h://proxy:1080",
        "all_proxy": "socks5h://other:1080",
        "UV_HTTP_TIMEOUT": "60",
    }
    plain = _env({"UV_HTTP_TIMEOUT": "60", "OMP_NUM_THREADS": "1"})
    other = _env({"UV_HTTP_TIMEOUT": "60", "HTTP_PROXY": "http://elsewhere:8080"})
    assert proxied.spec.spec_hash == plain.spec.spec_hash == other.spec.spec_hash  # the same lock
    assert proxied.hash == plain.hash == other.hash  # the same venv or image
    assert _env({"UV_HTTP_TIMEOUT": "61"}).hash != plain.hash  # what changes what is installed does


def test_a_docker_build_gets_the_proxies_as_dockers_own_build_arguments() -> None:
    """Docker's predefined proxy arguments need no ARG line: they stay out of the image's history."""
    text = dockerfile(_env({"HTTP_PROXY": "http://proxy:3128", "UV_HTTP_TIMEOUT": "60"}, "docker"), True, False)
    assert "ARG UV_HTTP_TIMEOUT" in text and "ARG HTTP_PROXY" not in text and "ARG http_proxy" not in text
    assert "--build-arg HTTP_PROXY --build-arg UV_HTTP_TIMEOUT --build-arg http_proxy" in text.splitlines()[1]
    assert "proxy:3128" not in text


def test_the_credentials_of_urls_are_not_shown() -> None:
    said = "cannot reach (https://tok3n@pypi.example.com/simple through the proxy http://me:p@ss@proxy:3128): refused"
    assert redact_urls(said) == (
        "cannot reach (https://<redacted>@pypi.example.com/simple through the proxy http://me:<redacted>@proxy:3128): "
        "refused"
    )
    assert redact_urls("http://proxy:3128/a@b and me@example.com") == "http://proxy:3128/a@b and me@example.com"
