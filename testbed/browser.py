"""Browser tests' shared steps."""


def sign_in(page, web: str, username: str, password: str, next_path: str) -> None:
    """Log in through the login page and land on ``next_path``."""
    page.goto(f"{web}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def screenshot(page, name: str) -> None:
    """The page as the operator sees it, saved as ``$SCREENSHOTS_DIR/<name>.png`` when that is set (``make
    screenshots`` sets it to docs/screenshots/, the pictures the README shows); otherwise nothing."""
    import os
    from pathlib import Path

    if folder := os.environ.get("SCREENSHOTS_DIR"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        # caret="initial": hiding the caret leaves style="" on inputs, which an htmx swap then copies (CSP).
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=False, caret="initial")
