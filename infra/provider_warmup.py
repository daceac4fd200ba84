"""Start the dynamic provider host while the program is still importing (issue 16).

Why: the engine starts a provider's plugin only when the first resource or invoke names it
("Provider plugins are loaded lazily by the provider registry", pulumi pkg/v3@v3.259.0
`engine/update.go` near line 1120), and the Python SDK sends its first RegisterResource only
after the program's body has run: registrations are tasks of an event loop that runs once the
body returns. So the host's own start (a Python process importing pulumi, grpc, dill and our
providers, about 0.35 s of a 1.7 s no-op preview) began only after the program's imports and
config reading, and the preview waited for the two one after the other.

An invoke of a function of the dynamic provider's package makes the engine load that same
default provider at once (`resmon.Invoke` → `getProviderFromSource`,
`resource/deploy/source_eval.go` lines 1099-1119; the key is package and version, and the SDK
sends version "" for both an invoke and a dynamic resource, `pulumi/runtime/invoke.py` and
`pulumi/dynamic/dynamic.py`). Sent without waiting for its answer, it lets the host import while
the program does. The invoke itself fails, and its answer is never read: the Python dynamic
provider host implements no function (`pulumi/dynamic/__main__.py` `Invoke`, UNIMPLEMENTED).
"""

from __future__ import annotations

from pulumi.runtime import settings
from pulumi.runtime.proto import resource_pb2

# A function of the dynamic provider's package; the provider has none, so any name will do.
WARMUP_TOKEN = "pulumi-python:dynamic:startProviderHost"
# The call in flight, held for the program's life: gRPC cancels a call whose future is garbage
# collected (grpc/_channel.py `_MultiThreadedRendezvous.__del__`).
_in_flight: list[object] = []


def start_dynamic_provider_host() -> None:
    """Ask the engine to start the dynamic provider host now; returns at once, never fails.

    Without an engine (a unit test of the program, or pulumi's mocks), there is nothing to start.
    """
    monitor = settings.get_monitor()
    invoke = getattr(getattr(monitor, "Invoke", None), "future", None)
    if invoke is None:  # mocks: a plain method, not a gRPC stub
        return
    _in_flight.append(
        invoke(resource_pb2.ResourceInvokeRequest(tok=WARMUP_TOKEN, acceptResources=True))
    )
