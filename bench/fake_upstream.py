"""A fast fake OpenAI upstream for load tests: fixed answers, no work.

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


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    if b'"stream":true' not in body.replace(b" ", b""):
        return web.Response(body=ANSWER, content_type="application/json")
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for chunk in CHUNKS:
        await response.write(chunk)
    await response.write_eof()
    return response


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
