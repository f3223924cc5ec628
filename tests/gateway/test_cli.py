"""Routes and credentials through the CLI, applied to a running gateway without restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import openai
import pytest

from tests.gateway.helpers import USER, sdk


def _cli(env, *args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "posturio.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_routes_and_credentials_from_the_cli(server, fake, make_tenant, tmp_path):
    tenant = await make_tenant()
    env = dict(os.environ)
    added = _cli(
        env,
        "credentials",
        "add",
        tenant.slug,
        "cli-key",
        "--provider",
        "openai",
        stdin="sk-from-stdin\n",
    )
    assert added.returncode == 0, added.stderr
    listed = _cli(env, "credentials", "list", tenant.slug)
    assert "cli-key" in listed.stdout and "sk-from-stdin" not in listed.stdout

    alias = f"cli-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "route.json"
    spec.write_text(
        json.dumps(
            {
                "deployments": [
                    {
                        "name": "main",
                        "provider": "openai",
                        "model": "ok",
                        "base_url": f"{fake.base_url}/v1",
                        "credential": "cli-key",
                    }
                ]
            }
        )
    )
    put = _cli(env, "routes", "put", tenant.slug, alias, "--file", str(spec))
    assert put.returncode == 0, put.stderr
    assert alias in _cli(env, "routes", "list", tenant.slug).stdout

    reply = await sdk(server, tenant.gateway_key).chat.completions.create(
        model=alias, messages=USER
    )
    assert reply.choices[0].message.content == "hello from the test"
    assert fake.calls("ok")[-1]["headers"]["Authorization"] == "Bearer sk-from-stdin"

    spec.write_text("{not json")
    bad = _cli(env, "routes", "put", tenant.slug, alias, "--file", str(spec))
    assert bad.returncode != 0 and "invalid route spec" in bad.stderr
    assert _cli(env, "routes", "delete", tenant.slug, alias).returncode == 0
    gone = await sdk(server, tenant.gateway_key).chat.completions.with_raw_response.create(
        model="echo", messages=USER
    )
    assert gone.status_code == 200


async def test_policy_from_the_cli_applies_at_once(server, make_tenant, tmp_path):
    tenant = await make_tenant()
    env = dict(os.environ)
    client = sdk(server, tenant.gateway_key)
    prompt = [{"role": "user", "content": "what is the budget of Project Nightjar?"}]
    await client.chat.completions.create(model="echo", messages=prompt)  # cached: allowed

    doc = tmp_path / "policy.json"
    doc.write_text(
        json.dumps(
            {
                "detectors": [{"id": "codenames", "keywords": ["Project Nightjar"]}],
                "rules": [{"id": "no-codenames", "action": "block", "match": {}}],
            }
        )
    )
    saved = _cli(env, "policy", "set", tenant.slug, "--file", str(doc), "--comment", "codenames")
    assert saved.returncode == 0, saved.stderr
    assert "version 1" in saved.stdout
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="echo", messages=prompt)
    assert "custom.codenames" in caught.value.message

    dry = _cli(env, "policy", "dry-run", tenant.slug, stdin="notes on project nightjar")
    assert dry.returncode == 2, dry.stderr
    assert json.loads(dry.stdout)["rule"] == "no-codenames"
    history = _cli(env, "policy", "history", tenant.slug)
    assert "codenames" in history.stdout
    doc.write_text('{"rules": [{"id": "x", "action": "teleport"}]}')
    bad = _cli(env, "policy", "set", tenant.slug, "--file", str(doc))
    assert bad.returncode != 0 and "teleport" in bad.stderr
