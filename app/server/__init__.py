"""`llamadesk serve`: the library over HTTP, OpenAI- and Ollama-compatible, safe on a LAN.

- `server_config`: what the operator chose (address, key, limits), checked before anything binds.
- `api_errors`: one error type for what a client got wrong, in OpenAI's or Ollama's JSON shape.
- `request_fields`: the JSON body read under a size limit, and its fields checked for type and range.
- `stop_strings`: cutting a streamed reply at the client's stop sequences.
- `model_pool`: the resident model, its one worker thread and the fair, bounded queue in front of it.
- `auth`, `request_log`: the bearer key check and one log line per request (ASGI middleware).
- `openai_routes`, `ollama_routes`: the two APIs over the same pool; `translation_route`: our own
  translation endpoint over `llamadesk.app.translate`; `app`: the Starlette app.
"""
