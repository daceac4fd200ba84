"""Dynamic providers, one module per resource kind.

Each module holds pure functions (props → request payload, olds/news → diff) and a thin
`ResourceProvider` whose CRUD methods validate props, call one client function and return
JSON-able outputs. Providers are pickled into the state: they keep no clients, keys or
config in attributes; credentials come from the (secret) resource inputs or the
environment at call time.
"""
