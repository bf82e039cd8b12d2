"""The widgets in a real browser: JupyterLab in headless Chromium, asserting on the DOM and the kernel."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_smoke_device_switcher(lab_page):
    lab_page.open("device_switcher.ipynb")
    lab_page.run_all()
    lab_page.page.wait_for_selector(".st-device-switcher .st-device[data-device=cpu]")
    lab_page.screenshot(".st-device-switcher", "device_switcher.png")
    print(lab_page.kernel_json("str(st.get_default_device())"))
    print("\n".join(lab_page.console[-20:]))
