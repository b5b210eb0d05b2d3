"""Browser tests' shared steps."""


def sign_in(page, web: str, username: str, password: str, next_path: str) -> None:
    """Log in through the login page and land on ``next_path``."""
    page.goto(f"{web}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
