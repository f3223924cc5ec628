"""A fast fake upstream for load tests: fixed answers, no work — OpenAI Chat and
Responses, Anthropic Messages.

Run: python -m bench.fake_upstream PORT
"""

from __future__ import annotations

import sys

from aiohttp import web

ANSWER = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help?"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,'
    b'"total_tokens":19}}'
)
CHUNKS = [
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"bench",'
    b'"choices":[{"index":0,"delta":{"content":"' + word + b'"},"finish_reason":null}]}\n\n'
    for word in (b"Hello", b"! ", b"How ", b"can ", b"I ", b"help?")
] + [
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"bench",'
    b'"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}\n\n',
    b"data: [DONE]\n\n",
]


MESSAGE = (
    b'{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":'
    b'[{"type":"text","text":"Hello! How can I help?"}],"stop_reason":"end_turn",'
    b'"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":7}}'
)
MESSAGE_EVENTS = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_bench",'
    b'"type":"message","role":"assistant","model":"bench","content":[],"stop_reason":null,'
    b'"usage":{"input_tokens":12,"output_tokens":1}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n',
    *(
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"' + word + b'"}}\n\n'
        for word in (b"Hello", b"! ", b"How ", b"can ", b"I ", b"help?")
    ),
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":7}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]
RESPONSE = (
    b'{"id":"resp_bench","object":"response","status":"completed","model":"bench","output":'
    b'[{"type":"message","id":"msg_b","status":"completed","role":"assistant","content":'
    b'[{"type":"output_text","text":"Hello! How can I help?","annotations":[]}]}],'
    b'"usage":{"input_tokens":12,"output_tokens":7,"total_tokens":19}}'
)
RESPONSE_EVENTS = [
    b'event: response.created\ndata: {"type":"response.created","sequence_number":0,'
    b'"response":{"id":"resp_bench","status":"in_progress","output":[]}}\n\n',
    *(
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"sequence_number":1,"item_id":"msg_b","output_index":0,"content_index":0,'
        b'"delta":"' + word + b'"}\n\n'
        for word in (b"Hello", b"! ", b"How ", b"can ", b"I ", b"help?")
    ),
    b"event: response.completed\ndata: "
    + RESPONSE[:-1].replace(
        b'{"id"', b'{"type":"response.completed","sequence_number":8,"response":{"id"', 1
    )
    + b"}}\n\n",
]


def _answer(fixed: bytes, events: list[bytes]):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if b'"stream":true' not in body.replace(b" ", b""):
            return web.Response(body=fixed, content_type="application/json")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(event)
        await response.write_eof()
        return response

    return handler


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _answer(ANSWER, CHUNKS))
    app.router.add_post("/v1/messages", _answer(MESSAGE, MESSAGE_EVENTS))
    app.router.add_post("/v1/responses", _answer(RESPONSE, RESPONSE_EVENTS))
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
