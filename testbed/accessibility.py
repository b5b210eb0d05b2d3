"""What the browser tests check of a page's accessibility: axe-core's rules, run in the page, and what the
keyboard reaches.

axe-core is pinned in package-lock.json and brought by ``make`` into ``testbed/vendor/`` (a test tool, never
served by the site). It is evaluated into the page through the browser's developer protocol, which the
site's Content-Security-Policy does not govern, so the pages are checked under their real policy."""

from pathlib import Path

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# The impacts a page must not have: axe-core's two highest. "moderate" and "minor" are reported, not failed.
SERIOUS = ("serious", "critical")

_RUN = """async (impacts) => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.filter((v) => impacts.includes(v.impact)).map((v) =>
    `${v.id} (${v.impact}): ${v.help}; ` + v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")
    + (v.nodes.length > 3 ? ` and ${v.nodes.length - 3} more` : ""));
}"""

# Every control a mouse can use, as the keyboard should reach it; hidden and disabled ones are left out. A
# group of radio buttons is one stop (Tab enters it, the arrow keys choose): its buttons share one mark.
_CONTROLS = """() => {
  const selector = "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]";
  const shown = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden";
  const controls = [...document.querySelectorAll(selector)].filter((e) =>
    shown(e) && !e.disabled && e.getAttribute("tabindex") !== "-1" && !e.closest("[inert]"));
  const groups = new Map();
  let count = 0;
  for (const e of controls) {
    const group = e.type === "radio" && e.name ? `${e.form?.id ?? ""} ${e.name}` : null;
    if (group && groups.has(group)) { e.setAttribute("data-keyboard-check", groups.get(group)); continue; }
    if (group) groups.set(group, count);
    e.setAttribute("data-keyboard-check", count++);
  }
  return count;
}"""

_FOCUSED = "() => document.activeElement?.getAttribute('data-keyboard-check') ?? null"

_DESCRIBE = """(unreached) => unreached.map((i) => {
  const e = document.querySelector(`[data-keyboard-check="${i}"]`);
  return `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""} "${(e.textContent || e.name || "").trim().slice(0, 40)}"`;
})"""


def axe_violations(page, impacts=SERIOUS) -> list[str]:
    """axe-core's violations of the given impacts in the page as it is now, one line each."""
    if not AXE.exists():
        raise FileNotFoundError(f"{AXE} is missing: `make {AXE.relative_to(AXE.parents[2])}` brings it from npm")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    return page.evaluate(_RUN, list(impacts))


def keyboard_unreached(page) -> list[str]:
    """The page's controls that pressing Tab from the top of the page never focuses. The walk ends when
    focus comes round to the first control again; a date and time input takes a stop per field, so the
    walk may take several presses per control, and is bounded."""
    count = page.evaluate(_CONTROLS)
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    reached, first, previous = set(), None, None
    for _ in range(8 * count + 20):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUSED)
        if focused is not None and focused == first and previous != first:
            break
        if focused is not None:
            first = first or focused
            reached.add(focused)
        previous = focused
    unreached = [i for i in range(count) if str(i) not in reached]
    return page.evaluate(_DESCRIBE, unreached) if unreached else []
