"""Counting the calls of a module attribute in a test (monkeypatched; undone after the test)."""


def count_calls(monkeypatch, owner, name: str) -> list:
    """Replaces `owner.<name>` by a wrapper that appends each call's arguments to the returned list."""
    calls = []
    real = getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls
