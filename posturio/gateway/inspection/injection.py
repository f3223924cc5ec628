"""Prompt-injection and jailbreak rules: known phrasings and structures, including
instructions planted in documents a user pastes ("note to the AI: ...").

Phrasing rules are deliberately specific (an instruction verb *and* its target) so that
ordinary prose about instructions or rules is not flagged; the default policy flags
these for review rather than blocking them."""

from __future__ import annotations

from posturio.gateway.inspection.rules import Check, Rule

_W = r"\s+"


def phrase(evidence: str) -> Check:
    def check(_candidate: str) -> str | None:
        return evidence

    return check


def _injection(rule_id: str, category: str, pattern: str, evidence: str, score: float) -> Rule:
    return Rule(rule_id, "injection", category, pattern, phrase(evidence), score, caseless=True)


INJECTION_RULES: tuple[Rule, ...] = (
    _injection(
        "injection.ignore_instructions",
        "prompt_injection",
        r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:(?:all|any|the|your|my|of|these)\s+)*"
        r"(?:previous|prior|above|earlier|preceding|initial|original|system|developer)\s+"
        r"(?:instructions?|prompts?|rules|directives|guidelines|context|messages?)\b",
        "instruction to drop earlier instructions",
        0.9,
    ),
    _injection(
        "injection.system_prompt_leak",
        "prompt_injection",
        r"\b(?:reveal|show|print|repeat|output|display|leak|dump|tell\s+me)\s+(?:me\s+)?"
        r"(?:your|the)\s+(?:(?:full|entire|original|hidden|initial|secret|exact)\s+)*"
        r"(?:system\s+prompt|system\s+message|initial\s+instructions|hidden\s+instructions"
        r"|instructions\s+above)",
        "request for the system prompt",
        0.85,
    ),
    _injection(
        "injection.jailbreak_persona",
        "jailbreak",
        r"\b(?:you\s+are\s+now|act\s+as|pretend\s+(?:to\s+be|you\s+are)|role-?play\s+as)\s+"
        r"(?:an?\s+)?(?:DAN|unfiltered|uncensored|jailbroken|evil|unrestricted|amoral)\b"
        r"|\bdo\s+anything\s+now\b"
        r"|\b(?:developer|god|jailbreak|DAN)\s+mode\s+(?:is\s+)?(?:enabled|on|activated)\b",
        "jailbreak persona",
        0.9,
    ),
    _injection(
        "injection.no_restrictions",
        "jailbreak",
        r"\byou\s+(?:are\s+no\s+longer|are\s+not|aren't)\s+bound\s+by\b"
        r"|\byou\s+have\s+no\s+(?:ethical\s+|content\s+|safety\s+)?"
        r"(?:restrictions|filters|guidelines|limits|rules)\b",
        "claims the model has no rules",
        0.85,
    ),
    _injection(
        "injection.chat_template_tokens",
        "prompt_injection",
        r"<\|(?:im_start|im_end|system|endoftext|start_header_id|eot_id)\|>|<<SYS>>|\[/?INST\]",
        "chat-template control tokens in content",
        0.8,
    ),
    _injection(
        "injection.planted_instruction",
        "hidden_instruction",
        r"\b(?:note|message|instructions?)\s+(?:to|for)\s+(?:the\s+|any\s+)?"
        r"(?:AI|LLM|assistant|language\s+model|chatbot)s?\s*[:\-]"
        r"|\b(?:AI|LLM|assistant|chatbot)s?\s+(?:reading|processing|summari[sz]ing)\s+this\b"
        r"|\bwhen\s+(?:you\s+)?(?:summari[sz]e|process|read)\s+this\s+(?:document|email|page|file)\b"
        r"[^\n]{0,80}\b(?:ignore|instead|do\s+not\s+mention|send|forward)\b",
        "instruction addressed to the model inside content",
        0.85,
    ),
    _injection(
        "injection.exfiltration",
        "prompt_injection",
        r"\b(?:send|post|forward|upload|exfiltrate|email)\s+(?:(?:all|the|your|this)\s+)*"
        r"(?:conversation|chat\s+history|previous\s+messages|system\s+prompt|credentials"
        r"|api\s+keys?|secrets|passwords)\s+to\b",
        "instruction to send data out",
        0.85,
    ),
)
