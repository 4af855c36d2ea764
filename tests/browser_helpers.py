"""What the browser tests share besides the `browser` fixture (tests/conftest.py)."""


def watch(page) -> list[str]:
    """Collect the page's console errors and uncaught exceptions; a test asserts it is empty."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    return problems
