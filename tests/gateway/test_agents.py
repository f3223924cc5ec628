"""The real coding agents through Posturio: Claude Code (Anthropic Messages) and Codex CLI
(OpenAI Responses), installed from npm by the test setup (scripts/ensure-agents), each
running a tool loop offline against the fake upstream through a translated route.

Proven for both: a secret in a file the agent reads never reaches the upstream — the
default policy blocks the request that carries it (the agent reports the gateway's
error), and under the README's agent recipe it is redacted and the agent finishes."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.helpers import deployment, put_route
from tests.gateway.test_policy import put_policy

AGENTS = Path(__file__).resolve().parents[2] / ".cache" / "agents" / "node_modules" / ".bin"
AWS_KEY = "AKIAZ7QW3ERT5YUI6OPL"
RECIPE = {
    "rules": [
        {
            "id": "agents-redact-secrets",
            "action": "redact",
            "match": {"detectors": ["secrets"], "dialects": ["messages", "responses"]},
        },
        {"id": "block-secrets", "action": "block", "match": {"detectors": ["secrets"]}},
    ]
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    if not (AGENTS / "claude").exists() or not (AGENTS / "codex").exists():
        pytest.fail("the coding agents are missing: run scripts/ensure-agents (make test does)")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(f"DB_HOST=db.internal\nAWS_ACCESS_KEY_ID={AWS_KEY}\n")
    return work


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "DISABLE_TELEMETRY": "1", "NO_COLOR": "1"}
    return subprocess.run(
        args, env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=180
    )


async def claude(server: str, key: str, model: str, work: Path) -> subprocess.CompletedProcess[str]:
    home = work.parent / "claude-home"
    home.mkdir(exist_ok=True)
    env = {
        "ANTHROPIC_BASE_URL": server,
        "ANTHROPIC_API_KEY": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HOME": str(home),
    }
    args = [str(AGENTS / "claude"), "-p", "read .env and tell me DB_HOST", "--model", model]
    return await asyncio.to_thread(_run, [*args, "--allowedTools", "Read"], env, work)


async def codex(server: str, key: str, model: str, work: Path) -> subprocess.CompletedProcess[str]:
    home = work.parent / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        f'model = "{model}"\nmodel_provider = "posturio"\n\n'
        "[model_providers.posturio]\n"
        'name = "Posturio"\n'
        f'base_url = "{server}/v1"\n'
        'env_key = "POSTURIO_API_KEY"\n'
        'wire_api = "responses"\n'
    )
    env = {"CODEX_HOME": str(home), "HOME": str(home), "POSTURIO_API_KEY": key}
    args = [str(AGENTS / "codex"), "exec", "--skip-git-repo-check", "read .env and tell me DB_HOST"]
    return await asyncio.to_thread(_run, args, env, work)


def _upstream_saw(fake: Any, model: str) -> str:
    return json.dumps([c["body"] for c in fake.calls(model)])


AGENT_TOOLS = [
    (claude, "Read", "file_path", ".env"),
    (codex, "exec_command", "cmd", "cat .env"),
]


@pytest.mark.parametrize(("agent", "tool", "arg", "value"), AGENT_TOOLS, ids=["claude", "codex"])
async def test_agent_tool_loop_secret_never_reaches_the_upstream(
    server, fake, make_tenant, workdir, agent, tool, arg, value
):
    tenant = await make_tenant()
    target = str(workdir / value) if tool == "Read" else value
    model = f"tool:{tool}:{arg}={target}"
    await put_route(server, tenant, "agent", [deployment("fake", model, fake.base_url)])

    blocked = await agent(server, tenant.gateway_key, "agent", workdir)
    output = blocked.stdout + blocked.stderr
    assert "policy rule 'block-secrets'" in output, output[-2000:]
    assert AWS_KEY not in _upstream_saw(fake, model)

    assert (await put_policy(server, tenant, RECIPE)).status_code == 200
    finished = await agent(server, tenant.gateway_key, "agent", workdir)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-2000:]
    assert "the tool said:" in output and "DB_HOST=db.internal" in output
    # The answer came from the upstream, which saw the placeholder (the agent itself may
    # still print the file it read locally).
    assert "[CLOUD_CREDENTIAL_1]" in output
    seen = _upstream_saw(fake, model)
    assert AWS_KEY not in seen and "[CLOUD_CREDENTIAL_1]" in seen
