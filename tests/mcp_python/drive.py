"""Drive the real `dealflow --sandbox mcp` binary with the official Python MCP SDK.

initialize -> list tools -> call a read -> call a write, approve it on the sandbox phone
(the real `dealflow sandbox phone` in another process) -> see it executed once in the
emulated Gmail and recorded in the audit log. Prints 'N passed, N failed' at the end.
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

BIN = sys.argv[1]
results = []


def check(name, cond, detail=""):
    results.append((name, bool(cond)))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"), flush=True)


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def main():
    home = tempfile.mkdtemp(prefix="dealflow-mcp-")
    env = dict(os.environ)
    env.update({
        "HOME": home,
        "XDG_DATA_HOME": f"{home}/data",
        "XDG_CONFIG_HOME": f"{home}/config",
        "XDG_STATE_HOME": f"{home}/state",
        "XDG_RUNTIME_DIR": f"{home}/run",
        "DEALFLOW_SANDBOX_URL_FILE": f"{home}/sandbox.url",
        "DEALFLOW_MCP_WAIT_BOUND": "30s",
    })
    params = StdioServerParameters(command=BIN, args=["--sandbox", "mcp"], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check("initialize names the server", init.server_info.name == "dealflow", init.server_info)

            tools = {t.name: t for t in (await session.list_tools()).tools}
            check("lists read and write tools", {"list_deals", "search_contacts", "send_email", "get_action_status"} <= set(tools), sorted(tools))
            check("reads are annotated read-only", tools["list_deals"].annotations.read_only_hint is True)
            check("sends are annotated as writes that reach outside", tools["send_email"].annotations.read_only_hint is False and tools["send_email"].annotations.open_world_hint is True)
            check("no tool changes permissions", not any("permission" in n for n in tools))

            read = await session.call_tool("search_contacts", {"query": "initech"})
            body = json.loads(text_of(read))
            check("a read runs at once", not read.is_error and body["contacts"][0]["email"] == "bill@initech.example", text_of(read))

            bad = await session.call_tool("send_email", {"to": "not-a-list"})
            check("bad arguments come back as a tool error", bad.is_error, text_of(bad))

            # The write waits for the device: approve it from a second process, the phone.
            async def phone():
                for _ in range(200):
                    await asyncio.sleep(0.1)
                    if not os.path.exists(env["DEALFLOW_SANDBOX_URL_FILE"]):
                        continue
                    out = subprocess.run([BIN, "sandbox", "phone", "--list"], env=env, capture_output=True, text=True)
                    if "dealflow: send_email" in out.stdout:
                        done = subprocess.run([BIN, "sandbox", "phone", "--approve", "1"], env=env, capture_output=True, text=True)
                        return out.stdout, done.returncode
                return "no request reached the phone", 1

            phone_task = asyncio.create_task(phone())
            write_res = await session.call_tool("send_email", {
                "to": ["bill@initech.example"],
                "subject": "Seat plan",
                "body": "Hi Bill, 20 minutes this week?",
            })
            listing, rc = await phone_task
            check("the phone saw the binding message", "send_email bill at initech.example" in listing, listing)
            check("the phone approved", rc == 0)
            answer = json.loads(text_of(write_res)) if not write_res.is_error else {}
            check("the write ran after the device said yes", answer.get("status") == "succeeded", text_of(write_res))
            check("the answer carries structured content", (write_res.structured_content or {}).get("status") == "succeeded", write_res.structured_content)

            # A no on the phone comes back as a tool error whose structured content says why.
            async def phone_no():
                for _ in range(200):
                    await asyncio.sleep(0.1)
                    out = subprocess.run([BIN, "sandbox", "phone", "--list"], env=env, capture_output=True, text=True)
                    if "dealflow: post_slack" in out.stdout:
                        return subprocess.run([BIN, "sandbox", "phone", "--deny", "1"], env=env, capture_output=True, text=True).returncode
                return 1
            deny_task = asyncio.create_task(phone_no())
            denied = await session.call_tool("post_slack", {"channel": "#deals", "text": "Initech signed"})
            check("the phone denied", await deny_task == 0)
            facts = denied.structured_content or {}
            check("a rejection is a tool error with its reason as structured content",
                  denied.is_error and facts.get("status") == "rejected" and "denied on the device" in facts.get("reason", ""),
                  (denied.is_error, facts))

            status = await session.call_tool("get_action_status", {"action_id": answer.get("action_id", "")})
            st = json.loads(text_of(status)) if not status.is_error else {}
            check("get_action_status reports it", st.get("state") == "succeeded", text_of(status))

            url, key = open(env["DEALFLOW_SANDBOX_URL_FILE"]).read().split()[:2]  # URL, then the control key
            req = urllib.request.Request(f"{url}/sandbox/providers", headers={"Authorization": f"Bearer {key}"})
            providers = json.load(urllib.request.urlopen(req))
            sent = [m for m in providers["sent"] if m["to"] == "bill@initech.example"]
            check("executed exactly once in the emulated Gmail", len(sent) == 1, providers)

    # A client that can show a link (URL-mode elicitation) is pointed at a page saying
    # what the phone is asked; declining the prompt takes the write back.
    seen = []

    async def shows_the_link(context, params):
        page = urllib.request.urlopen(params.url).read().decode()
        seen.append((params.message, params.url, page))
        return types.ElicitResult(action=answers.pop(0))

    answers = ["accept", "decline"]
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, elicitation_callback=shows_the_link) as session:
            await session.initialize()

            async def phone_yes():
                for _ in range(200):
                    await asyncio.sleep(0.1)
                    out = subprocess.run([BIN, "sandbox", "phone", "--list"], env=env, capture_output=True, text=True)
                    if "dealflow: schedule_meeting" in out.stdout:
                        return subprocess.run([BIN, "sandbox", "phone", "--approve", "1"], env=env, capture_output=True, text=True).returncode
                return 1
            yes_task = asyncio.create_task(phone_yes())
            booked = await session.call_tool("schedule_meeting", {
                "title": "Seat plan", "attendees": ["bill@initech.example"],
                "start": 1900000000000, "end": 1900001800000,
            })
            check("the phone approved the meeting", await yes_task == 0)
            check("the client was shown a link to where the write stands",
                  len(seen) == 1 and seen[0][1].startswith("http://127.0.0.1:") and "Waiting for your yes or no on your phone" in seen[0][2]
                  and "schedule_meeting" in seen[0][0],
                  seen)
            check("after an accepted link, the phone's yes runs it",
                  (booked.structured_content or {}).get("status") == "succeeded", text_of(booked))

            declined = await session.call_tool("post_slack", {"channel": "#deals", "text": "never mind"})
            facts = declined.structured_content or {}
            check("declining the link takes the write back",
                  declined.is_error and facts.get("status") == "rejected" and "taken back" in facts.get("reason", ""),
                  (declined.is_error, facts))
            after = urllib.request.urlopen(seen[-1][1]).read().decode()
            check("its page says so", "<b>rejected</b>" in after, after)

    audit = subprocess.run([BIN, "--sandbox", "audit", "export", "--format", "jsonl"], env=env, capture_output=True, text=True)
    events = [json.loads(l) for l in audit.stdout.splitlines() if l.strip()]
    executed = [e for e in events if e["event"] == "action.executed" and e["detail"].get("kind") == "send_email"]
    check("the audit log has the execution with the device's consent",
          len(executed) == 1 and executed[0]["detail"]["evidence"]["by"] == "ciba", [e["event"] for e in events])
    check("the read is audited with the client's name",
          any(e["event"] == "action.read" and e["actor"].startswith("mcp:") for e in events))
    verify = subprocess.run([BIN, "--sandbox", "audit", "verify"], env=env, capture_output=True, text=True)
    check("the audit chain verifies", verify.returncode == 0, verify.stderr)


asyncio.run(main())
passed = sum(1 for _, ok in results if ok)
failed = len(results) - passed
print(f"mcp-python: {passed} passed, {failed} failed")
sys.exit(0 if failed == 0 and passed > 0 else 1)
