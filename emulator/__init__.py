"""A local emulator of the Anthropic CMA and Blaxel APIs, for tests and the offline `local` stack.

Layout (after getmoto/moto): per platform, a state backend of plain classes whose methods are
named after API operations (`emulator/<platform>/models.py`), thin Starlette routes over it
(`routes.py`) and the platform's error shapes (`exceptions.py`). `emulator.app.create_app()`
mounts both platforms, the Console stand-in and the fault injector on one loopback server.
"""
