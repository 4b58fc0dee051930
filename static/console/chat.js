// The live chat: sends messages, follows the conversation's SSE stream with a stream
// ticket and the last cursor seen (a reload or a dropped connection resumes exactly
// where it was: every event once, in order), and renders what arrives. Streamed text is
// shown as plain text (textContent: nothing the model writes can become markup); once an
// answer is done, the server's sanitized Markdown rendering replaces it.
(function () {
  "use strict";
  const chat = document.getElementById("chat");
  if (!chat) return;
  const $ = (id) => document.getElementById(id);
  const csrf = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  const csrfToken = csrf ? decodeURIComponent(csrf[1]) : "";
  const ZERO = "00000000-0000-0000-0000-000000000000";
  const types = JSON.parse($("event-types-data").textContent);
  const live = $("live");
  const messages = $("messages");
  const status = $("status");
  const input = $("composer-input");
  const sendBtn = $("send-btn");
  const stopBtn = $("stop-btn");
  const agentName = chat.dataset.agentName;

  let cursor = parseInt(chat.dataset.cursor, 10);
  let source = null;
  let activeRun = chat.dataset.activeRun || null;
  let answer = null; // the bubble of the answer being streamed
  let thinking = null;
  const tools = {};
  let retryDelay = 500;

  function post(url, data) {
    const body = new URLSearchParams(data || {});
    return fetch(url, {
      method: "POST",
      body,
      headers: { "X-CSRFToken": csrfToken },
      credentials: "same-origin",
    });
  }

  function scrollDown() { messages.scrollTop = messages.scrollHeight; }
  function setStatus(text, isError) {
    status.textContent = text || "";
    status.classList.toggle("error-line", !!isError);
  }
  function setBusy(busy) {
    stopBtn.hidden = !busy;
    document.body.classList.toggle("chat-busy", busy);
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function trace(summary, body) {
    const details = el("details", "trace");
    details.appendChild(el("summary", "", summary));
    const pre = el("pre", "", body || "");
    details.appendChild(pre);
    live.appendChild(details);
    return pre;
  }

  // Images a tool produced (code_interpreter's charts): workspace files, shown through
  // the files API's download URL (same origin: the session cookie authenticates).
  function toolImages(images) {
    if (!images.length) return;
    const box = el("div", "tool-images");
    for (const image of images) {
      if (typeof image.url !== "string" || !/^\/(?!\/)/.test(image.url)) continue;
      const link = el("a");
      link.href = image.url;
      link.target = "_blank";
      link.rel = "noopener";
      const img = el("img");
      img.src = image.url;
      img.alt = image.path || "image";
      img.loading = "lazy";
      link.appendChild(img);
      box.appendChild(link);
    }
    live.appendChild(box);
    scrollDown();
  }

  function approvalCard(runId, pending) {
    const card = el("div", "approval");
    card.setAttribute("data-approval", runId);
    card.appendChild(el("strong", "", "Approval needed"));
    for (const call of pending) {
      card.appendChild(el("p", "", `${agentName} wants to run ${call.name} with:`));
      card.appendChild(el("pre", "", typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments, null, 2)));
    }
    const row = el("div", "row");
    const approve = el("button", "btn btn-primary btn-sm", "Approve");
    const reject = el("button", "btn btn-sm btn-danger", "Reject");
    for (const [button, approved] of [[approve, "1"], [reject, "0"]]) {
      button.type = "button";
      button.addEventListener("click", async () => {
        approve.disabled = reject.disabled = true;
        const ids = pending.map((p) => p.tool_call_id);
        const response = await post(chat.dataset.decisionUrl.replace(ZERO, runId), {
          approved, tool_call_id: ids[0] || "-",
        });
        if (response.ok) {
          card.replaceWith(el("div", "small muted", approved === "1" ? "Approved." : "Rejected."));
        } else {
          const data = await response.json().catch(() => ({}));
          setStatus(data.error || "Could not record the decision.", true);
          approve.disabled = reject.disabled = false;
        }
      });
      row.appendChild(button);
    }
    card.appendChild(row);
    live.appendChild(card);
    scrollDown();
  }

  async function finishAnswer(messageId) {
    const target = answer;
    answer = null;
    const response = await fetch(chat.dataset.messageUrl.replace(ZERO, messageId), { credentials: "same-origin" });
    if (!response.ok || !target) return;
    const holder = document.createElement("div");
    holder.innerHTML = await response.text(); // the server's sanitized rendering
    const rendered = holder.querySelector(`.msg[data-message-id="${messageId}"]`);
    if (rendered) {
      target.closest(".msg").replaceWith(rendered);
      window.consoleUI.addCopyButtons(rendered);
    }
    scrollDown();
  }

  const handlers = {
    "run.queued": () => setStatus("Queued: it starts when the current answer ends."),
    "run.started": (data, ev) => {
      activeRun = ev.run_id || activeRun;
      setBusy(true);
      setStatus(`${agentName} is working…`);
      document.querySelectorAll("[data-queued-run]").forEach((node) => {
        if (node.dataset.queuedRun === ev.run_id) node.remove();
      });
    },
    "phase": (data) => {
      const label = { thinking: "Thinking…", tool_calling: "Using tools…", answering: "Answering…", compacting: "Summarizing earlier messages…" }[data.phase];
      if (label) setStatus(label);
    },
    "step": (data) => {
      if (data.thinking_delta) {
        if (!thinking) thinking = trace("Thinking", "");
        thinking.textContent += data.thinking_delta;
      }
    },
    "tool.call": (data) => {
      tools[data.tool_call_id] = trace(`Tool call: ${data.name}`, JSON.stringify(data.arguments, null, 2));
    },
    "tool.result": (data) => {
      const pre = tools[data.tool_call_id];
      const text = (data.is_error ? "Error: " : "") + (data.content || "");
      if (pre) pre.textContent += "\n\n→ " + text.slice(0, 4000);
      else trace(`Tool result: ${data.name}`, text.slice(0, 4000));
      toolImages(data.images || []);
    },
    "approval.required": () => {},
    "run.requires_action": (data, ev) => {
      setStatus("Waiting for your approval.");
      approvalCard(ev.run_id, data.pending || []);
    },
    "answer.start": () => {
      const msg = el("div", "msg msg-assistant");
      msg.appendChild(el("span", "who", agentName));
      answer = el("div", "bubble streaming");
      msg.appendChild(answer);
      live.appendChild(msg);
      thinking = null;
    },
    "answer.delta": (data) => {
      if (!answer) handlers["answer.start"]();
      answer.textContent += data.delta;
      scrollDown();
    },
    "answer.done": (data) => {
      if (answer) {
        answer.classList.remove("streaming");
        // What the stream delivered, kept for the browser tests (exactly once, no gap).
        window.lastStreamedAnswer = answer.textContent;
      }
      if (data.message_id) finishAnswer(data.message_id);
    },
    "title": (data) => { $("chat-title").textContent = data.title; document.title = data.title; },
    "suggestions": (data) => {
      const box = $("suggestions");
      box.replaceChildren();
      for (const text of data.suggestions || []) {
        const chip = el("button", "chip", text);
        chip.type = "button";
        chip.addEventListener("click", () => { box.replaceChildren(); send(text); });
        box.appendChild(chip);
      }
    },
    "run.failed": (data) => setStatus(`The answer failed: ${(data.error && data.error.message) || "unknown error"}`, true),
    "run.cancelled": () => setStatus("Stopped."),
    "run.interrupted": () => setStatus("The answer was interrupted (the server restarted). Send again or regenerate.", true),
    "done": (data) => {
      if (answer) answer.classList.remove("streaming");
      if (data.status === "completed") setStatus("");
    },
    "end": () => { setBusy(false); activeRun = null; },
  };

  function onEvent(raw) {
    const ev = JSON.parse(raw.data);
    if (typeof ev.cursor === "number") {
      if (ev.cursor <= cursor) return; // already shown
      cursor = ev.cursor;
    }
    const handler = handlers[ev.type];
    if (handler) handler(ev.data || {}, ev);
  }

  async function connect() {
    if (source) source.close();
    let url;
    try {
      const response = await post(chat.dataset.ticketUrl);
      if (!response.ok) throw new Error(String(response.status));
      url = (await response.json()).url;
    } catch (err) {
      setStatus("Connection lost; retrying…", true);
      setTimeout(connect, retryDelay = Math.min(retryDelay * 2, 10000));
      return;
    }
    source = new EventSource(`${url}&cursor=${cursor}`);
    source.onopen = () => { retryDelay = 500; };
    for (const type of types) source.addEventListener(type, onEvent);
    source.onerror = () => {
      // A ticket opens one connection: reconnect with a new one from the last cursor.
      source.close();
      source = null;
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  async function send(text) {
    text = (text || "").trim();
    if (!text) return;
    const bubble = el("div", "msg msg-user");
    bubble.appendChild(el("span", "who", "You"));
    bubble.appendChild(el("div", "bubble", text));
    live.appendChild(bubble);
    $("suggestions").replaceChildren();
    scrollDown();
    sendBtn.disabled = true;
    const response = await post(chat.dataset.sendUrl, { content: text });
    sendBtn.disabled = false;
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      bubble.remove();
      input.value = text;
      setStatus(data.error || "The message could not be sent.", true);
      return;
    }
    const data = await response.json();
    if (data.status === "queued" && activeRun) {
      bubble.querySelector(".who").textContent = "Queued";
      bubble.dataset.queuedRun = data.run_id;
    }
  }

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    input.value = "";
    send(text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  stopBtn.addEventListener("click", () => {
    if (activeRun) post(chat.dataset.stopUrl.replace(ZERO, activeRun));
  });
  // Regenerate and edit replace the last exchange (kept on the server, superseded): the
  // page reloads to show the conversation as it now reads; the new answer streams in.
  async function rerun(url, data, fallback) {
    const response = await post(url, data);
    if (response.ok) {
      window.location.reload();
      return;
    }
    const body = await response.json().catch(() => ({}));
    setStatus(body.error || fallback, true);
  }
  $("regenerate-btn").addEventListener("click", () => rerun(chat.dataset.regenerateUrl, {}, "Nothing to regenerate."));
  $("edit-btn").addEventListener("click", () => {
    const mine = document.querySelectorAll(".msg-user:not(.queued) .bubble");
    const last = mine.length ? mine[mine.length - 1].textContent : "";
    const text = window.prompt("Edit your last message", last);
    if (text && text.trim()) rerun(chat.dataset.editUrl, { content: text }, "The message could not be changed.");
  });
  messages.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-feedback]");
    if (!button) return;
    const response = await post(button.dataset.url, { rating: button.dataset.feedback });
    if (response.ok) {
      button.parentElement.querySelectorAll("[data-feedback]").forEach((b) => b.classList.remove("btn-primary"));
      button.classList.add("btn-primary");
    }
  });

  if (activeRun) setBusy(true);
  scrollDown();
  connect();
  chat.dataset.ready = "true"; // the composer sends from now on (tests wait for it)
})();
