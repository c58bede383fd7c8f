"""The service: ``audio-cppn serve``, an HTTP API over a persistent job queue (see the README's Service section).

app (routes) -> requests (checks before queueing) -> store (SQLite) -> worker (one thread) ->
compute (the child process that owns the device and calls the library, as the CLI does).
"""
