"""The served app freezes what survives its first full collections (``api.app``)."""

from __future__ import annotations

import gc

from allegiance.api import app as app_module


def test_the_first_full_collections_freeze_their_survivors_then_the_hook_leaves() -> None:
    app_module._survivor_freezes[0] = 0
    gc.callbacks.append(app_module._freeze_survivors)
    try:
        lasting = [[i] for i in range(1000)]  # survives: frozen at the next full collection
        before = gc.get_freeze_count()
        gc.collect(1)  # not a full collection: nothing frozen
        assert gc.get_freeze_count() == before
        gc.collect()
        assert gc.get_freeze_count() >= before + len(lasting)
        gc.collect()
        gc.collect()
        assert app_module._freeze_survivors not in gc.callbacks
        frozen = gc.get_freeze_count()
        gc.collect()  # after the third, full collections no longer freeze
        assert gc.get_freeze_count() == frozen
    finally:
        if app_module._freeze_survivors in gc.callbacks:
            gc.callbacks.remove(app_module._freeze_survivors)
        gc.unfreeze()
