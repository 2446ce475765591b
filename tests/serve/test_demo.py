"""The one-command demo on the embedded default model, checked over HTTP and in headless Chromium.

The browser test needs Debian's `chromium` at /usr/bin/chromium (`.ci/run` installs it) and the Python
`playwright` package (the `test` extra); Playwright drives that Chromium, no `playwright install`.
A screenshot of the page after a DART answer lands in tests/artifacts/.
"""

import os
import signal
from pathlib import Path

import httpx
import pytest
from serve_helpers import ServerProcess, b64_png, free_port, scene_image, stream_chunks, wait_until
from suite_timeouts import hang_timeout

from llava.conversation import get_conv_template
from llava.data.questions import prompt
from llava.data.shapes import render
from llava.serve.gradio_web_server import example_questions

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    logs = tmp_path_factory.mktemp("demo")
    ports = {"page": free_port(), "controller": free_port(), "worker": free_port()}
    proc = ServerProcess("llava.serve.demo", [
        "--port", str(ports["page"]), "--controller-port", str(ports["controller"]),
        "--worker-port", str(ports["worker"]), "--device", "cpu", "--log-dir", str(logs / "conversations"),
    ], logs / "demo.log")
    proc.wait_ready(lambda: "demo ready" in proc.log_tail(), 300, "the demo to start")
    yield {"proc": proc, "page": f"http://127.0.0.1:{ports['page']}",
           "controller": f"http://127.0.0.1:{ports['controller']}", "ports": ports, "logs": logs}
    proc.stop()


@pytest.mark.slow
def test_demo_serves_the_page_and_the_api(demo):
    page = httpx.get(demo["page"], timeout=30)
    assert page.status_code == 200 and "LLaVA + DART" in page.text
    controller = demo["controller"]
    assert httpx.post(f"{controller}/list_models").json() == {"models": ["llava-v1.5-tiny"]}

    conv = get_conv_template("llava_v1")
    conv.append_message(conv.roles[0], "<image>\nWhat shapes are there?")
    conv.append_message(conv.roles[1], None)
    payload = {"model": "llava-v1.5-tiny", "prompt": conv.get_prompt(), "images": [b64_png(scene_image())],
               "temperature": 0, "max_new_tokens": 8, "stop": "</s>"}
    final = stream_chunks(controller, payload)[-1]
    assert final["error_code"] == 0 and final["finished"]
    # The demo's worker prunes by default, with the default settings (K=2, 128 selected) -> 132 of 576 kept.
    assert (final["pruning"]["kept_image_tokens"], final["pruning"]["image_tokens"]) == (132, 576)


@pytest.mark.slow
def test_the_page_offers_examples_the_default_model_answers_right(demo):
    page = httpx.get(demo["page"], timeout=30).text
    for scene, qa in example_questions():
        assert qa.question in page
        conv = get_conv_template("llava_v1")
        conv.append_message(conv.roles[0], f"<image>\n{prompt(qa)}")
        conv.append_message(conv.roles[1], None)
        payload = {"model": "llava-v1.5-tiny", "prompt": conv.get_prompt(), "images": [b64_png(render(scene))],
                   "temperature": 0, "max_new_tokens": 8, "stop": "</s>"}
        final = stream_chunks(demo["controller"], payload)[-1]
        assert final["error_code"] == 0
        assert final["text"].strip().lower().rstrip(".") == qa.answer, qa


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
@pytest.mark.slow
def test_browser_chat_with_dart_shows_the_kept_patch_overlay(demo, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    scene, qa = example_questions()[0]  # a held-out scene and a question the default model answers right
    image_path = tmp_path / "scene.png"
    render(scene).save(image_path)
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1050})
            page.set_default_timeout(hang_timeout(120) * 1000)
            page.goto(demo["page"])
            page.wait_for_selector("#textbox textarea")
            assert page.locator("#dart_on input[type=checkbox]").is_checked()

            page.locator("#imagebox input[type=file]").set_input_files(str(image_path))
            page.wait_for_selector("#imagebox img")  # the upload finished
            page.locator("#textbox textarea").fill(prompt(qa))
            page.locator("#send_btn").click()

            page.wait_for_function("document.querySelector('#prune_stats').innerText.includes('image tokens')")
            stats = page.inner_text("#prune_stats")
            assert "DART on: kept 132 / 576 image tokens (77.1% pruned)" in stats and "prefill" in stats
            overlay = page.locator("#overlay img")
            overlay.wait_for(state="visible")
            size = overlay.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert size == [504, 504]  # 24 x 24 patches, 21 px each
            chat = page.inner_text("#chatbot")
            assert qa.question in chat and "DART kept 132/576 image tokens" in chat
            page.screenshot(path=str(ARTIFACTS / "browser_demo_dart_on.png"), full_page=True)

            # The switch turns pruning off for the next answer (the same question again).
            page.locator("#dart_on input[type=checkbox]").uncheck()
            page.locator("#textbox textarea").fill(prompt(qa))
            page.locator("#send_btn").click()
            page.wait_for_function("document.querySelector('#prune_stats').innerText.includes('DART off')")
            assert "DART off: kept 576 / 576 image tokens (0.0% pruned)" in page.inner_text("#prune_stats")
            assert page.inner_text("#chatbot").count(qa.question) == 2
            page.screenshot(path=str(ARTIFACTS / "browser_demo_dart_off.png"), full_page=True)
        finally:
            browser.close()

    # Both answers were logged by the web server.
    log_files = list((demo["logs"] / "conversations").glob("*-conv.json"))
    assert len(log_files) == 1 and len(log_files[0].read_text().splitlines()) == 2


@pytest.mark.slow
def test_sigterm_stops_all_three_servers(demo):
    proc = demo["proc"]
    proc.process.send_signal(signal.SIGTERM)  # the demo process only: it must stop its children itself
    assert proc.process.wait(30) == 0

    def closed(port):
        try:
            httpx.get(f"http://127.0.0.1:{port}", timeout=1)
        except httpx.TransportError:
            return True
        return False

    for name, port in demo["ports"].items():
        wait_until(lambda: closed(port), 15, what=f"the {name} port to close")


def test_demo_without_the_serve_extra_says_what_to_install(monkeypatch, caplog):
    from llava.serve import demo as demo_module

    real_find_spec = demo_module.importlib.util.find_spec
    monkeypatch.setattr(demo_module.importlib.util, "find_spec",
                        lambda name: None if name in ("gradio", "uvicorn") else real_find_spec(name))
    assert demo_module.main([]) == 2
    assert "the demo needs uvicorn, gradio: install the serve extra (bash scripts/setup_env.sh serve" in caplog.text
