"""The admin console in headless Chromium (run by tests/console/run).

One story, step by step, as a platform admin and then as a member: each
step checks what the page shows, and the main pages are saved as
screenshots. The billed call goes straight to the data plane with the key
the console showed once.
"""

import json
import os
import sys
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

URL = os.environ["TOLLGATE_URL"].rstrip("/")
ADMIN_TOKEN = os.environ["TOLLGATE_ADMIN_TOKEN"]
SHOTS = os.environ["SCREENSHOTS"]
PASSWORD = "correct horse battery staple"


def chat(key):
    """A chat call with `key`: its HTTP status."""
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello from the console test"}]})
    req = urllib.request.Request(URL + "/v1/chat/completions", method="POST", data=body.encode())
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def balance(page):
    value = page.locator("#balance b[data-value]").get_attribute("data-value")
    return int(value)


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            os.environ["BROWSER_PROFILE"],
            executable_path=os.environ["CHROMIUM"],
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
            viewport={"width": 1200, "height": 900},
        )
        page = browser.new_page()
        outside = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(URL) and not r.url.startswith(("data:", "blob:")) else None)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # The console checks every answer against the document's schema.
        drift = []
        page.on("console", lambda m: drift.append(m.text) if m.type == "error" and "OpenAPI document" in m.text else None)

        # Sign in with the admin token.
        page.goto(URL + "/console")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        shot(page, "01-sign-in")
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.locator("form").nth(1).get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Organizations")).to_be_visible()
        expect(page.get_by_text("No organizations yet")).to_be_visible()

        # Create an organization.
        page.get_by_label("Name").fill("Console Org")
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("heading", name="Console Org")).to_be_visible()
        org_id = page.url.split("#/org/")[1].split("/")[0]

        # Its settings; suspended, then resumed.
        page.get_by_label("Markup %").fill("10")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#banner")).to_have_text("Settings saved.")
        expect(page.get_by_role("cell", name="10%", exact=True)).to_be_visible()
        page.get_by_role("button", name="Suspend").click()
        expect(page.locator("#banner")).to_have_text("Suspended: its keys are refused within a second.")
        expect(page.get_by_role("heading", name="Console Org").get_by_text("suspended")).to_be_visible()
        page.get_by_role("button", name="Resume").click()
        expect(page.locator("#banner")).to_have_text("Resumed.")
        expect(page.get_by_role("heading", name="Console Org").get_by_text("suspended")).to_have_count(0)
        shot(page, "02-organization")

        # A key, shown once.
        page.get_by_role("link", name="API keys").click()
        expect(page.get_by_text("No API keys yet.")).to_be_visible()
        page.get_by_label("Name").fill("console-key")
        page.get_by_label("Budget (µ$)").fill("50000000")
        page.get_by_role("button", name="Create").click()
        secret = page.locator("[data-secret] code").inner_text()
        assert secret.startswith("tg-"), secret
        expect(page.get_by_role("cell", name="console-key")).to_be_visible()
        shot(page, "03-api-key-created")
        page.reload()
        expect(page.get_by_role("cell", name="console-key")).to_be_visible()
        assert page.locator("[data-secret]").count() == 0, "the key is shown only once"

        # Credits.
        page.get_by_role("link", name="Credits").click()
        expect(page.get_by_text("No ledger entries yet.")).to_be_visible()
        page.get_by_label("Amount").fill("5000000")
        page.get_by_label("Reason").fill("console test")
        page.get_by_role("button", name="Grant").click()
        expect(page.get_by_role("cell", name="console test")).to_be_visible()
        before = balance(page)
        assert before == 5_000_000, before

        # A billed call: the balance and the usage chart change.
        assert chat(secret) == 200
        page.reload()
        expect(page.get_by_role("cell", name="usage")).to_be_visible()
        after = balance(page)
        assert 0 < before - after, (before, after)
        shot(page, "04-credits")
        page.get_by_role("link", name="Usage").click()
        expect(page.locator("[data-chart] .bar").first).to_be_visible()
        expect(page.get_by_role("cell", name="gpt-4o-mini").first).to_be_visible()
        page.get_by_label("Group by").select_option("model")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("[data-chart='Cost by model'] .label").first).to_have_text("gpt-4o-mini")
        with page.expect_download() as download:
            page.get_by_role("button", name="Export CSV").click()
        csv = open(download.value.path()).read()
        assert csv.startswith("request_id,") and "gpt-4o-mini" in csv, csv
        shot(page, "05-usage")

        # The request log: the call, and its provider attempt.
        page.get_by_role("link", name="Requests").click()
        row = page.get_by_role("row").filter(has_text="gpt-4o-mini").first
        expect(row.get_by_text("200", exact=True)).to_be_visible()
        row.get_by_role("button", name="Details").click()
        attempt = page.locator("#request-detail").get_by_role("row").filter(has_text="mock")
        expect(attempt.get_by_role("cell", name="ok", exact=True)).to_be_visible()
        expect(page.locator("#request-detail")).not_to_contain_text("null")
        shot(page, "05b-request-log")

        # A provider key: added, shown by its hint only, deactivated.
        page.get_by_role("link", name="Provider keys").click()
        expect(page.get_by_text("No provider keys")).to_be_visible()
        page.get_by_label("Name").fill("own-mock")
        page.get_by_label("API key").fill("sk-console-secret-1234")
        page.get_by_label("Test it first").check()
        page.get_by_role("button", name="Add").click()
        expect(page.locator("#banner")).to_have_text("The key works and is stored.")
        expect(page.get_by_text("…1234")).to_be_visible()
        assert "sk-console-secret" not in page.content()
        toggle = page.locator("[data-toggle='own-mock']")
        toggle.click()
        expect(page.get_by_text("inactive", exact=True)).to_be_visible()
        toggle.click()
        expect(page.get_by_text("active", exact=True)).to_be_visible()
        toggle.click()
        expect(page.get_by_text("inactive", exact=True)).to_be_visible()
        shot(page, "06-provider-keys")

        # Revoke the key: the data plane refuses it.
        page.get_by_role("link", name="API keys").click()
        page.locator("[data-revoke='console-key']").click()
        expect(page.get_by_text("revoked", exact=True)).to_be_visible()
        assert chat(secret) == 401

        # The catalog: a price changed, a model disabled.
        page.get_by_role("link", name="Model catalog").click()
        expect(page.get_by_role("cell", name="gpt-4o-mini")).to_be_visible()
        page.get_by_label("Id", exact=True).fill("console-model")
        page.get_by_label("Provider", exact=True).fill("mock")
        page.get_by_label("Input µ$ / Mtok").fill("100000")
        page.get_by_role("button", name="Add").click()
        expect(page.locator("#banner")).to_have_text("console-model added.")
        expect(page.get_by_role("cell", name="console-model", exact=True)).to_be_visible()
        # An error, in words.
        page.get_by_label("Id", exact=True).fill("console-model")
        page.get_by_label("Provider", exact=True).fill("mock")
        page.get_by_role("button", name="Add").click()
        expect(page.locator("#banner")).to_have_text(
            "Model `console-model` already exists; change it with PATCH /api/v1/models/console-model (also to enable it again)."
        )
        row = page.get_by_role("row").filter(has_text="text-embedding-3-small")
        row.get_by_label("Input µ$").fill("30000")
        row.get_by_role("button", name="Set price").click()
        expect(page.locator("#banner")).to_have_text("Price of text-embedding-3-small changed.")
        expect(row.get_by_role("cell", name="$0.0300")).to_be_visible()
        row.get_by_role("button", name="Disable").click()
        expect(row.get_by_text("disabled")).to_be_visible()
        shot(page, "07-catalog")
        page.goto(f"{URL}/console#/org/{org_id}/members")
        expect(page.get_by_text("No members yet")).to_be_visible()
        page.get_by_label("Email").fill("bob@example.com")
        page.get_by_role("button", name="Invite").click()
        assert page.locator("[data-secret] code").inner_text().startswith("tginv_")
        # The invitation is pending until revoked.
        expect(page.get_by_role("cell", name="bob@example.com")).to_be_visible()
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Revoke").click()
        expect(page.locator("#banner")).to_have_text("The invitation for bob@example.com is revoked.")
        expect(page.get_by_text("No pending invitations.")).to_be_visible()

        # A webhook: its signing secret is shown once.
        page.get_by_role("link", name="Webhooks").click()
        expect(page.get_by_text("No webhooks yet.")).to_be_visible()
        page.get_by_label("URL").fill("https://example.com/tollgate-hook")
        page.get_by_label("credits.granted").check()
        page.get_by_role("button", name="Create").click()
        assert page.locator("[data-secret] code").inner_text().startswith("whsec_")
        expect(page.get_by_role("cell", name="https://example.com/tollgate-hook")).to_be_visible()
        shot(page, "08-webhooks")

        # An organization deleted (after a confirmation).
        page.get_by_role("link", name="Organizations").click()
        page.get_by_label("Name").fill("Doomed Org")
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("heading", name="Doomed Org")).to_be_visible()
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete").click()
        expect(page.locator("#banner")).to_contain_text("Doomed Org deleted")
        expect(page.get_by_role("link", name="Console Org")).to_be_visible()
        expect(page.get_by_role("link", name="Doomed Org")).to_have_count(0)

        # A member signs in and cannot reach an admin page.
        page.get_by_role("link", name="Users").click()
        expect(page.get_by_text("No users yet")).to_be_visible()
        page.get_by_label("Email").fill("member@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Role").select_option("org_member")
        page.get_by_label("Organization id").fill(org_id)
        page.get_by_role("button", name="Create").click()
        expect(page.locator("#banner")).to_have_text("User member@example.com created (org_member).")
        expect(page.get_by_role("cell", name="member@example.com")).to_be_visible()
        shot(page, "08b-users")
        page.get_by_role("link", name="Sign out").click()
        page.get_by_label("Email").fill("member@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.locator("form").first.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Console Org")).to_be_visible()
        assert page.get_by_role("link", name="Credits").count() == 0
        assert page.get_by_role("link", name="Requests").count() == 1, "a member reads the request log"
        assert page.get_by_role("link", name="Organizations").count() == 0
        assert page.get_by_role("button", name="Create").count() == 0
        page.goto(f"{URL}/console#/orgs")
        expect(page.locator("#forbidden")).to_be_visible()
        page.goto(f"{URL}/console#/org/{org_id}/credits")
        expect(page.locator("#forbidden")).to_be_visible()
        shot(page, "09-member-forbidden")
        page.get_by_role("link", name="My organization").click()
        page.get_by_role("link", name="Usage").click()
        expect(page.locator("[data-chart] .bar").first).to_be_visible()

        # A phone-width screen.
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        expect(page.locator("[data-chart] .bar").first).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"the page is {width}px wide on a 390px screen"
        shot(page, "10-phone-usage")

        assert not outside, f"requests left the gateway: {outside}"
        assert not errors, f"script errors: {errors}"
        assert not drift, f"answers unlike the document: {drift}"
        browser.close()
    print("console: every step passed")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback

        traceback.print_exc()
        sys.exit(1)
