"""The page-test helper (``browser.render``) sees what a reader would: loaded and missing images, other hosts."""

from __future__ import annotations

from browser import render

PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
ELSEWHERE = "https://cdn.example.com/logo.png"


def test_render_runs_scripts_reports_images_and_refuses_other_hosts() -> None:
    page = render(
        f"data:text/html,<p id=greeting></p><img src='{PIXEL}'><img src='{ELSEWHERE}'>"
        "<script>document.getElementById('greeting').textContent = 'hello from a script'</script>",
        count=["img"],
    )
    assert page.text.strip() == "hello from a script" and page.counts == {"img": 2}
    assert page.images == {PIXEL: 1, ELSEWHERE: 0}
    assert page.blocked == [ELSEWHERE] and page.requested == [ELSEWHERE]
