/*
 * Switchboard web chat widget.
 *
 * Embed with one tag:  <script src="https://bridge.example/webchat/widget.js" async></script>
 *
 * The script finds its API from its own src, draws a chat button and panel inside a Shadow DOM
 * (the page's CSS stays out, ours stays in), and talks to the documented JSON API
 * (docs/webchat.md): POST /session for an anonymous token kept in localStorage, POST /messages
 * and /files (queued, retried with the same client_id so a retry never duplicates), and a
 * Server-Sent Events stream for history and live events.
 *
 * Safety rules: every piece of text from the network is put in the page with textContent or
 * createTextNode. Agent HTML (already sanitised by the server) is parsed in an inert document and
 * copied element by element through an allowlist; nothing is ever assigned to innerHTML.
 */
(function () {
  "use strict";

  if (window.__switchboardWebchat) return;
  window.__switchboardWebchat = true;

  var CSS = "__SWITCHBOARD_CSS__";

  // --- Where we come from -------------------------------------------------------------------
  var script = document.currentScript;
  if (!script) {
    var candidates = document.querySelectorAll("script[src]");
    for (var i = candidates.length - 1; i >= 0; i--) {
      if (/\/widget\.js([?#].*)?$/.test(candidates[i].src)) { script = candidates[i]; break; }
    }
  }
  if (!script) return;
  var BASE = script.src.replace(/\/widget\.js([?#].*)?$/, ""); // e.g. https://bridge.example/webchat
  var API = BASE + "/api/v1";
  var ORIGIN = new URL(BASE).origin;
  var STORAGE_KEY = "switchboard-webchat:" + BASE;
  var TYPING_TEXT = "Support is typing\u2026";

  // --- Small helpers -------------------------------------------------------------------------
  // What a visitor can react with (any emoji is taken by the server; these are offered).
  var REACTIONS = ["\uD83D\uDC4D", "\u2764\uFE0F", "\uD83D\uDE02", "\uD83D\uDE2E", "\uD83D\uDE22", "\uD83D\uDE4F"];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") node.textContent = value;
        else if (key === "class") node.className = value;
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function humanSize(bytes) {
    var MIB = 1024 * 1024;
    if (bytes >= MIB && bytes % MIB === 0) return bytes / MIB + " MiB";
    if (bytes >= MIB) return (bytes / MIB).toFixed(1) + " MiB";
    if (bytes >= 1024) return Math.floor(bytes / 1024) + " KiB";
    return bytes + " bytes";
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function safeUrl(raw, allowMailto) {
    try {
      var url = new URL(raw);
      if (url.protocol === "http:" || url.protocol === "https:" || (allowMailto && url.protocol === "mailto:")) {
        return url.href;
      }
    } catch (e) { /* not a URL */ }
    return null;
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // --- Persistent state (localStorage may be unavailable: private modes, sandboxed frames) ----
  function loadSaved() {
    try { return JSON.parse(window.localStorage.getItem(STORAGE_KEY) || "{}") || {}; } catch (e) { return {}; }
  }
  var saved = loadSaved();

  var state = {
    token: saved.token || null,
    visitorId: saved.visitor_id || null,
    name: saved.name || null,
    email: saved.email || null,
    lastReadSeq: saved.last_read_seq || 0,
    config: { site_name: "Support", greeting: null, availability: null, max_upload_bytes: 0, max_text_length: 10000, proof_of_work_bits: 0 },
    lastSeq: 0,
    messages: {}, // id -> message (sent ones)
    applied: {}, // transcript seqs already applied
    pending: {}, // client_id -> message (not acknowledged yet)
    queue: [], // {kind: "text"|"file", cid, text?, file?, reply_to?}
    flushing: false,
    backoff: 1000,
    flushTimer: null,
    holdUntil: 0,
    replyTo: null,
    editing: null,
    open: false,
    readUpTo: null,
    lastReadSent: null,
    identityDirty: false,
    es: null,
    esBackoff: 1000,
    typingActive: false,
    typingTimer: null,
    agentTypingTimer: null,
  };

  function persist() {
    var queue = state.queue
      .filter(function (item) { return item.kind === "text"; })
      .map(function (item) { return { cid: item.cid, text: item.text, reply_to: item.reply_to || null }; });
    try {
      window.localStorage.setItem(STORAGE_KEY, JSON.stringify({
        token: state.token, visitor_id: state.visitorId, name: state.name, email: state.email,
        last_read_seq: state.lastReadSeq, queue: queue,
      }));
    } catch (e) { /* storage full or blocked: the chat still works for this page view */ }
  }

  // --- HTTP ---------------------------------------------------------------------------------
  // Resolves to {ok, status, data, retryAfter}; rejects only on network failure.
  function api(method, path, body, isForm) {
    var headers = {};
    var init = { method: method, headers: headers };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    if (body !== undefined) {
      if (isForm) init.body = body;
      else { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    }
    return fetch(API + path, init).then(function (res) {
      var retryAfter = parseInt(res.headers.get("Retry-After") || "", 10);
      var result = { ok: res.ok, status: res.status, data: null, retryAfter: isNaN(retryAfter) ? null : retryAfter };
      if (res.status === 204) return result;
      return res.json().then(function (data) { result.data = data; return result; }, function () { return result; });
    });
  }

  function errorText(result, fallback) {
    if (result && result.data && typeof result.data.message === "string") return result.data.message;
    return fallback;
  }

  // --- DOM ------------------------------------------------------------------------------------
  var host, root, ui = {};

  function icon(path) {
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var p = document.createElementNS("http://www.w3.org/2000/svg", "path");
    p.setAttribute("d", path);
    svg.appendChild(p);
    return svg;
  }

  // Icon-only buttons carry no text, so a test or a screen reader reading textContent of the
  // banner or preview gets only the message; the name is in aria-label.
  var X_ICON = "M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z";
  function closeButton(testid, label, small) {
    return el("button", { class: "icon-button" + (small ? " small" : ""), type: "button", "data-testid": testid, "aria-label": label, title: label }, [icon(X_ICON)]);
  }

  function build() {
    host = document.createElement("switchboard-webchat");
    host.style.setProperty("all", "initial", "important");
    host.style.setProperty("display", "block", "important");
    host.style.setProperty("position", "fixed", "important");
    host.style.setProperty("z-index", "2147483000", "important");
    host.style.setProperty("right", "0", "important");
    host.style.setProperty("bottom", "0", "important");
    root = host.attachShadow({ mode: "open" });
    root.appendChild(el("style", { text: CSS }));

    ui.badge = el("span", { class: "badge", "data-testid": "unread", hidden: true });
    ui.launcher = el("button", { class: "launcher", type: "button", "data-testid": "launcher", "aria-label": "Open chat", "aria-expanded": "false" }, [
      icon("M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"),
      ui.badge,
    ]);

    ui.title = el("div", { class: "title", "data-testid": "site-name", text: state.config.site_name });
    ui.close = closeButton("close", "Close chat", false);
    var header = el("header", { class: "header" }, [ui.title, ui.close]);

    ui.errorText = el("span", { class: "error-text" });
    ui.errorClose = closeButton("error-close", "Dismiss", true);
    ui.error = el("div", { class: "error", role: "alert", "data-testid": "error", hidden: true }, [ui.errorText, ui.errorClose]);

    ui.greeting = el("div", { class: "greeting", "data-testid": "greeting", hidden: true });
    // Whether the team works now and how soon it answers (from GET /config).
    ui.status = el("div", { class: "status-line", "data-testid": "availability", role: "status", hidden: true });
    // Out of hours: an e-mail address, so the answer reaches the visitor after they leave.
    ui.offlineEmail = el("input", { type: "email", "data-testid": "offline-email", placeholder: "you@example.com", autocomplete: "email", maxlength: "254", required: true, "aria-label": "Your e-mail for our answer" });
    ui.offlineSave = el("button", { type: "submit", class: "send", "data-testid": "offline-save", text: "Save" });
    ui.offlineForm = el("form", { class: "offline-form", novalidate: true }, [ui.offlineEmail, ui.offlineSave]);
    ui.offlineSaved = el("div", { class: "offline-saved", "data-testid": "offline-saved", hidden: true });
    ui.offline = el("div", { class: "offline", "data-testid": "offline", hidden: true }, [
      el("p", { class: "offline-text", text: "Leave your e-mail address and we will answer you there, even after you close this page." }),
      ui.offlineForm, ui.offlineSaved,
    ]);
    ui.list = el("div", { class: "list", "data-testid": "messages" });
    ui.log = el("div", { class: "log", role: "log", "aria-live": "polite" }, [ui.greeting, ui.status, ui.offline, ui.list]);
    ui.typing = el("div", { class: "typing", "data-testid": "typing", hidden: true, text: TYPING_TEXT });

    ui.name = el("input", { type: "text", "data-testid": "name", placeholder: "Your name (optional)", autocomplete: "name", maxlength: "80", "aria-label": "Your name" });
    ui.email = el("input", { type: "email", "data-testid": "email", placeholder: "E-mail (optional)", autocomplete: "email", maxlength: "254", "aria-label": "Your e-mail" });
    ui.identity = el("div", { class: "identity", "data-testid": "identity" }, [ui.name, ui.email]);

    ui.replyText = el("span", { class: "context-text" });
    ui.replyCancel = closeButton("reply-cancel", "Cancel reply", true);
    ui.replyPreview = el("div", { class: "context", "data-testid": "reply-preview", hidden: true }, [
      el("span", { class: "context-label", text: "Replying to" }), ui.replyText, ui.replyCancel,
    ]);
    ui.editCancel = closeButton("edit-cancel", "Cancel editing", true);
    ui.editPreview = el("div", { class: "context", "data-testid": "edit-preview", hidden: true }, [
      el("span", { class: "context-label", text: "Editing your message" }), ui.editCancel,
    ]);

    ui.attach = el("input", { type: "file", class: "file-input", "data-testid": "attach", "aria-label": "Attach a file", tabindex: "-1" });
    ui.attachButton = el("button", { type: "button", class: "icon-button attach", "aria-label": "Attach a file", title: "Attach a file" }, [
      icon("M16.5 6.5v9a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v9.5a1.5 1.5 0 0 1-3 0V6.5h-1.5v8a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v10.5a6 6 0 0 0 12 0v-9z"),
    ]);
    ui.input = el("textarea", { "data-testid": "input", rows: "1", placeholder: "Write a message\u2026", "aria-label": "Message" });
    ui.send = el("button", { type: "submit", class: "send", "data-testid": "send", text: "Send" });
    ui.form = el("form", { class: "composer" }, [ui.attachButton, ui.attach, ui.input, ui.send]);

    ui.panel = el("section", { class: "panel", role: "dialog", "aria-label": "Chat", "data-testid": "panel", hidden: true }, [
      header, ui.error, ui.log, ui.typing, ui.identity, ui.replyPreview, ui.editPreview, ui.form,
    ]);

    root.appendChild(el("div", { class: "root" }, [ui.panel, ui.launcher]));
    document.body.appendChild(host);
    wire();
  }

  // --- Panel, errors, identity -----------------------------------------------------------------
  function setOpen(open) {
    state.open = open;
    ui.panel.hidden = !open;
    ui.launcher.setAttribute("aria-expanded", open ? "true" : "false");
    ui.launcher.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    host.classList.toggle("open", open);
    if (open) {
      scrollToEnd();
      markRead();
      setTimeout(function () { ui.input.focus(); }, 0);
    }
    updateBadge();
  }

  function showError(message) {
    ui.errorText.textContent = message;
    ui.error.hidden = false;
  }

  function hideError() {
    ui.error.hidden = true;
    ui.errorText.textContent = "";
  }

  function updateIdentity() {
    // Name and e-mail are offered until the visitor has written something.
    var written = Object.keys(state.messages).some(function (id) { return state.messages[id].from === "visitor"; })
      || Object.keys(state.pending).length > 0;
    ui.identity.hidden = written;
  }

  // --- Rendering messages -----------------------------------------------------------------------
  function renderText(container, text) {
    // Plain text with http(s) links made clickable, all through DOM APIs.
    container.textContent = "";
    var re = /\bhttps?:\/\/[^\s<>"']+/gi;
    var last = 0, match;
    while ((match = re.exec(text))) {
      var raw = match[0].replace(/[.,;:!?)\]]+$/, "");
      var href = safeUrl(raw, false);
      if (!href) continue;
      if (match.index > last) container.appendChild(document.createTextNode(text.slice(last, match.index)));
      container.appendChild(el("a", { href: href, target: "_blank", rel: "noopener noreferrer", text: raw }));
      last = match.index + raw.length;
      re.lastIndex = last;
    }
    if (last < text.length) container.appendChild(document.createTextNode(text.slice(last)));
  }

  var ALLOWED_TAGS = { B: 1, STRONG: 1, I: 1, EM: 1, U: 1, S: 1, CODE: 1, PRE: 1, BR: 1, P: 1, UL: 1, OL: 1, LI: 1, BLOCKQUOTE: 1, A: 1 };

  function copyAllowed(from, to, depth) {
    if (depth > 32) return;
    for (var node = from.firstChild; node; node = node.nextSibling) {
      if (node.nodeType === 3) {
        to.appendChild(document.createTextNode(node.nodeValue));
      } else if (node.nodeType === 1) {
        var tag = node.tagName.toUpperCase();
        if (tag === "SCRIPT" || tag === "STYLE" || tag === "TEMPLATE") continue;
        if (!ALLOWED_TAGS[tag]) { copyAllowed(node, to, depth + 1); continue; }
        var copy = document.createElement(tag.toLowerCase());
        if (tag === "A") {
          var href = safeUrl(node.getAttribute("href") || "", true);
          if (href) { copy.setAttribute("href", href); copy.setAttribute("target", "_blank"); copy.setAttribute("rel", "noopener noreferrer"); }
        }
        copyAllowed(node, copy, depth + 1);
        to.appendChild(copy);
      }
    }
  }

  function renderHtml(container, html) {
    // DOMParser documents are inert: no script runs and nothing loads while we read it.
    container.textContent = "";
    var doc = new DOMParser().parseFromString("<!doctype html><body>" + html, "text/html");
    copyAllowed(doc.body, container, 0);
  }

  function fileUrl(attachment) {
    var url = attachment.url || (BASE + "/api/v1/files/" + attachment.file_id);
    url = new URL(url, BASE + "/").href;
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + "token=" + encodeURIComponent(state.token || "");
  }

  function renderAttachment(attachment) {
    var row = el("div", { class: "file", "data-testid": "attachment" });
    var meta = el("span", { class: "file-size", text: humanSize(attachment.size || 0) });
    if (attachment.local) {
      row.appendChild(el("span", { class: "file-name", "data-testid": "attachment-name", text: attachment.name }));
      row.appendChild(meta);
      return row;
    }
    var href = fileUrl(attachment);
    var mime = String(attachment.mime || "");
    var ours = false;
    try { ours = new URL(href).origin === ORIGIN; } catch (e) { ours = false; }
    if (ours && /^image\//.test(mime) && mime !== "image/svg+xml") {
      var img = el("img", { class: "file-image", alt: attachment.name, loading: "lazy", "data-testid": "attachment-image" });
      img.src = href;
      row.appendChild(el("a", { href: href, target: "_blank", rel: "noopener noreferrer", class: "image-link" }, [img]));
    }
    var link = el("a", { class: "file-name", href: ours ? href : null, target: "_blank", rel: "noopener noreferrer", download: attachment.name, "data-testid": "attachment-name", text: attachment.name });
    row.appendChild(link);
    row.appendChild(meta);
    return row;
  }

  function snippet(message) {
    if (!message) return "an earlier message";
    if (message.deleted) return "a deleted message";
    var text = message.text || (message.attachments && message.attachments[0] && message.attachments[0].name) || "";
    return text.length > 80 ? text.slice(0, 80) + "\u2026" : text;
  }

  function findMessage(id) {
    return state.messages[id] || null;
  }

  function actionButton(testid, label, onClick) {
    var button = el("button", { type: "button", class: "action", "data-testid": testid, text: label });
    button.addEventListener("click", onClick);
    return button;
  }

  function render(message) {
    if (message.kind === "rating") return renderRating(message);
    var row = message.row;
    if (!row) {
      row = message.row = el("div", { "data-testid": "message" });
    }
    row.className = "message from-" + message.from + (message.deleted ? " deleted" : "") + (message.failed ? " failed" : "");
    row.setAttribute("data-from", message.from);
    row.setAttribute("data-id", message.id || "pending-" + message.cid);
    if (message.seq) row.setAttribute("data-seq", String(message.seq));
    if (message.deleted) row.setAttribute("data-deleted", "true"); else row.removeAttribute("data-deleted");
    row.textContent = "";

    var bubble = el("div", { class: "bubble" });
    if (message.reply_to && !message.deleted) {
      bubble.appendChild(el("div", { class: "quote", "data-testid": "reply-quote", "data-reply-to": message.reply_to, text: snippet(findMessage(message.reply_to)) }));
    }
    var text = el("div", { class: "text", "data-testid": "message-text" });
    if (message.deleted) {
      text.appendChild(el("span", { class: "deleted-mark", "data-testid": "deleted", text: "Message deleted" }));
    } else if (message.html && message.from === "agent") {
      renderHtml(text, message.html);
    } else {
      renderText(text, message.text || "");
    }
    if (message.deleted || message.text || message.html) bubble.appendChild(text);
    if (!message.deleted && message.attachments && message.attachments.length) {
      bubble.appendChild(el("div", { class: "files" }, message.attachments.map(renderAttachment)));
    }
    row.appendChild(bubble);

    // Reactions: the agents' and the visitor's own, one each (the newest replaces the last).
    var reactions = message.reactions || {};
    if (!message.deleted && (reactions.agent || reactions.visitor)) {
      var shown = el("div", { class: "reactions", "data-testid": "reactions" });
      ["agent", "visitor"].forEach(function (side) {
        if (!reactions[side]) return;
        var label = side === "agent" ? "Support reacted " : "You reacted ";
        shown.appendChild(el("span", { class: "reaction from-" + side, "data-testid": "reaction", "data-from": side, title: label + reactions[side], text: reactions[side] }));
      });
      row.appendChild(shown);
    }

    var meta = el("div", { class: "meta" });
    if (message.edited && !message.deleted) meta.appendChild(el("span", { class: "edited", "data-testid": "edited", text: "edited" }));
    if (message.failed) meta.appendChild(el("span", { class: "status failed", "data-testid": "status", text: "Not sent" }));
    else if (!message.id) meta.appendChild(el("span", { class: "status", "data-testid": "status", text: "Sending\u2026" }));
    if (message.seen) meta.appendChild(el("span", { class: "seen", "data-testid": "seen", text: "Seen" }));
    if (meta.firstChild) row.appendChild(meta);

    if (message.id && !message.deleted) {
      var actions = el("div", { class: "actions" });
      actions.appendChild(actionButton("reply", "Reply", function () { startReply(message.id); }));
      if (message.from === "visitor") {
        if (message.text) actions.appendChild(actionButton("edit", "Edit", function () { startEdit(message.id); }));
        actions.appendChild(actionButton("delete", "Delete", function () { deleteMessage(message.id); }));
      } else {
        actions.appendChild(actionButton("react", "React", function () {
          message.picking = !message.picking;
          render(message);
        }));
      }
      row.appendChild(actions);
      if (message.picking && message.from === "agent") {
        row.appendChild(el("div", { class: "reaction-picker", "data-testid": "reaction-picker" }, REACTIONS.map(function (key) {
          var choice = el("button", { type: "button", class: "reaction-choice" + (reactions.visitor === key ? " chosen" : ""), "data-testid": "reaction-choice", "data-key": key, "aria-label": "React " + key, text: key });
          choice.addEventListener("click", function () {
            message.picking = false;
            react(message.id, reactions.visitor === key ? null : key);
          });
          return choice;
        })));
      }
    }
    return row;
  }

  // A rating request: the question, five stars (buttons, so Tab and Enter work), then the
  // chosen score and an optional comment (sent as the visitor's next message, which the team
  // keeps as the rating's comment).
  function renderRating(message) {
    var row = message.row;
    if (!row) row = message.row = el("div", { "data-testid": "rating" });
    // Drawn again while the visitor types a comment (a message arriving, a read receipt): what
    // they typed, and the caret, stay.
    var root = row.getRootNode ? row.getRootNode() : null; // the widget's shadow root, or the page
    var active = root && root.activeElement;
    var typing = !!(active && active.tagName === "TEXTAREA" && row.contains(active));
    row.className = "message from-agent rating";
    row.setAttribute("data-id", message.id);
    row.setAttribute("data-seq", String(message.seq || 0));
    if (message.score) row.setAttribute("data-score", String(message.score)); else row.removeAttribute("data-score");
    row.textContent = "";
    var bubble = el("div", { class: "bubble" });
    var questionId = "sb-rating-" + String(message.id).replace(/[^A-Za-z0-9_-]/g, "");
    bubble.appendChild(el("div", { class: "text", id: questionId, "data-testid": "rating-question", text: message.question || "" }));
    var stars = el("div", { class: "stars", role: "group", "aria-labelledby": questionId });
    (message.choices || []).forEach(function (choice) {
      var score = Number(choice.score);
      var chosen = message.score && score <= message.score;
      var star = el("button", {
        type: "button", class: "star" + (chosen ? " on" : ""), "data-testid": "rating-star", "data-score": String(score),
        "aria-label": score + (score === 1 ? " star" : " stars"), "aria-pressed": message.score === score ? "true" : "false",
        disabled: !!message.score || !!message.sending, text: "\u2605",
      });
      star.addEventListener("click", function () { rate(message, choice); });
      stars.appendChild(star);
    });
    bubble.appendChild(stars);
    if (message.score) {
      bubble.appendChild(el("div", { class: "rating-done", "data-testid": "rating-done", text: "Thank you! You rated us " + message.score + " of 5." }));
      if (message.commenting) {
        var comment = el("textarea", { "data-testid": "rating-comment", rows: "2", maxlength: "2000", placeholder: "Anything to add? (optional)", "aria-label": "Comment on your rating (optional)" });
        comment.value = message.draft || "";
        comment.addEventListener("input", function () { message.draft = comment.value; });
        var send = el("button", { type: "submit", class: "send", "data-testid": "rating-comment-send", text: "Send" });
        var form = el("form", { class: "rating-comment" }, [comment, send]);
        form.addEventListener("submit", function (e) {
          e.preventDefault();
          var text = comment.value.trim();
          if (!text) return;
          message.commenting = false;
          message.commented = true;
          message.draft = "";
          renderRating(message);
          enqueue({ kind: "text", cid: randomId(), text: text, reply_to: null });
        });
        bubble.appendChild(form);
        if (typing) {
          // Focus once the row is in the page again (it is, unless drawn for the first time).
          setTimeout(function () {
            comment.focus();
            comment.setSelectionRange(comment.value.length, comment.value.length);
          }, 0);
        }
      } else if (message.commented) {
        bubble.appendChild(el("div", { class: "rating-done", "data-testid": "rating-comment-sent", text: "Comment sent." }));
      }
    }
    row.appendChild(bubble);
    return row;
  }

  function rate(message, choice) {
    if (message.score || message.sending) return;
    message.sending = true;
    renderRating(message);
    ensureSession().then(function (ready) {
      if (!ready) return null;
      return api("POST", "/rating", { payload: choice.payload });
    }).then(function (result) {
      message.sending = false;
      if (!result) { renderRating(message); return; }
      if (!result.ok) { showError(errorText(result, "Your rating could not be sent.")); renderRating(message); return; }
      hideError();
      message.commenting = true;
      apply({ type: "rated", id: message.id, score: result.data ? result.data.score : choice.score });
      // The stream's echo of the rating may have come first (and drawn the stars without the
      // comment box): draw the box now either way.
      renderRating(message);
      var box = message.row && message.row.querySelector("textarea");
      if (box) box.focus();
    }, function () {
      message.sending = false;
      showError("You seem to be offline; your rating was not sent.");
      renderRating(message);
    });
  }

  function sortedMessages() {
    var sent = Object.keys(state.messages).map(function (id) { return state.messages[id]; });
    sent.sort(function (a, b) { return a.seq - b.seq; });
    var pending = Object.keys(state.pending).map(function (cid) { return state.pending[cid]; });
    pending.sort(function (a, b) { return a.created - b.created; });
    return sent.concat(pending);
  }

  function place() {
    // Keep rows in transcript order (pending ones last). appendChild moves existing nodes.
    var nearEnd = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
    sortedMessages().forEach(function (message, index) {
      if (!message.row) render(message);
      if (ui.list.children[index] !== message.row) ui.list.insertBefore(message.row, ui.list.children[index] || null);
    });
    updateIdentity();
    if (nearEnd) scrollToEnd();
  }

  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function updateSeen() {
    var target = state.readUpTo && state.messages[state.readUpTo];
    var best = null;
    if (target) {
      Object.keys(state.messages).forEach(function (id) {
        var m = state.messages[id];
        if (m.from === "visitor" && !m.deleted && m.seq <= target.seq && (!best || m.seq > best.seq)) best = m;
      });
    }
    Object.keys(state.messages).forEach(function (id) {
      var m = state.messages[id];
      var seen = m === best;
      // Only a change is drawn (never-seen and not-seen are the same).
      if (!!m.seen !== seen) { m.seen = seen; render(m); }
    });
  }

  function unreadCount() {
    return Object.keys(state.messages).filter(function (id) {
      var m = state.messages[id];
      return m.from === "agent" && !m.deleted && m.seq > state.lastReadSeq;
    }).length;
  }

  function updateBadge() {
    var count = state.open ? 0 : unreadCount();
    ui.badge.hidden = count === 0;
    ui.badge.textContent = count > 9 ? "9+" : String(count);
  }

  var markReadTimer = null;
  function scheduleMarkRead() {
    clearTimeout(markReadTimer);
    markReadTimer = setTimeout(markRead, 300);
  }

  // The visitor has seen everything on screen: remember it and tell the agents.
  function markRead() {
    if (!state.open || document.visibilityState === "hidden") return;
    var lastAgent = null;
    Object.keys(state.messages).forEach(function (id) {
      var m = state.messages[id];
      if (m.from === "agent" && (!lastAgent || m.seq > lastAgent.seq)) lastAgent = m;
    });
    if (!lastAgent) return;
    if (lastAgent.seq > state.lastReadSeq) { state.lastReadSeq = lastAgent.seq; persist(); }
    if (state.lastReadSent !== lastAgent.id && state.token) {
      state.lastReadSent = lastAgent.id;
      api("POST", "/read", { up_to: lastAgent.id }).catch(function () { state.lastReadSent = null; });
    }
    updateBadge();
  }

  // --- Applying events (from the stream or from our own requests) ------------------------------
  function clientIdOf(id) {
    var prefix = "v." + state.visitorId + ".";
    return id && id.indexOf(prefix) === 0 ? id.slice(prefix.length) : null;
  }

  function adopt(id, seq) {
    // A message we sent is now stored: move it from pending to the transcript.
    var cid = clientIdOf(id);
    var message = state.messages[id] || (cid && state.pending[cid]) || null;
    if (cid && state.pending[cid]) delete state.pending[cid];
    if (!message) return null;
    message.id = id;
    if (seq && !message.seq) message.seq = seq;
    message.failed = false;
    state.messages[id] = message;
    return message;
  }

  function apply(event) {
    if (!event || typeof event !== "object") return;
    if (typeof event.seq === "number") {
      // A reconnect may replay what we have; applying an old entry again could undo an edit.
      if (state.applied[event.seq]) return;
      state.applied[event.seq] = true;
      if (event.seq > state.lastSeq) state.lastSeq = event.seq;
    }
    var message;
    switch (event.type) {
      case "message":
        message = adopt(event.id, event.seq) || (state.messages[event.id] = { id: event.id, created: Date.now() });
        message.seq = event.seq;
        message.from = event.from === "agent" ? "agent" : "visitor";
        message.text = typeof event.text === "string" ? event.text : "";
        message.html = typeof event.html === "string" ? event.html : null;
        message.attachments = Array.isArray(event.attachments) ? event.attachments : [];
        message.reply_to = event.reply_to || null;
        render(message);
        place();
        if (message.from === "agent") {
          setAgentTyping(false);
          scheduleMarkRead();
          updateBadge();
        }
        updateSeen();
        break;
      case "edit":
        message = state.messages[event.id];
        if (!message) return;
        message.text = typeof event.text === "string" ? event.text : "";
        message.html = typeof event.html === "string" ? event.html : null;
        message.edited = true;
        render(message);
        break;
      case "delete":
        message = state.messages[event.id];
        if (!message) return;
        message.deleted = true;
        render(message);
        if (state.editing === event.id) stopEdit();
        if (state.replyTo === event.id) stopReply();
        updateSeen();
        updateBadge();
        break;
      case "read":
        state.readUpTo = event.up_to;
        updateSeen();
        break;
      case "reaction":
        message = state.messages[event.id];
        if (!message) return;
        message.reactions = message.reactions || {};
        message.reactions[event.from === "agent" ? "agent" : "visitor"] = typeof event.key === "string" && event.key ? event.key : null;
        render(message);
        break;
      case "rating":
        message = state.messages[event.id] || (state.messages[event.id] = { id: event.id, created: Date.now() });
        message.kind = "rating";
        message.from = "rating";
        message.seq = event.seq;
        message.question = typeof event.question === "string" ? event.question : "";
        message.choices = Array.isArray(event.choices) ? event.choices.filter(function (c) {
          return c && typeof c.payload === "string" && typeof c.score === "number";
        }) : [];
        render(message);
        place();
        break;
      case "rated":
        message = state.messages[event.id];
        if (!message || typeof event.score !== "number") return;
        // Our own click's answer and then the stream's echo: draw once (a comment being typed
        // must not be wiped by the echo).
        if (message.score === event.score) return;
        message.score = event.score;
        render(message);
        break;
      case "typing":
        setAgentTyping(!!event.active);
        break;
      default:
        break; // newer servers may send more types; ignore them
    }
  }

  function setAgentTyping(active) {
    clearTimeout(state.agentTypingTimer);
    ui.typing.hidden = !active;
    // Matrix typing notices expire; so does ours if the "stopped" event never comes.
    if (active) state.agentTypingTimer = setTimeout(function () { ui.typing.hidden = true; }, 30000);
  }

  // --- Session ---------------------------------------------------------------------------------
  function identityFields() {
    var body = {};
    var name = ui.name.value.trim();
    var email = ui.email.value.trim();
    if (name) body.name = name;
    if (email) body.email = email;
    return body;
  }

  // --- Proof of work for a new session (docs/webchat.md) -------------------------------------
  // The bridge may ask a new visitor's browser to find a nonce such that
  // SHA-256("<challenge>:<nonce>") starts with `bits` zero bits: invisible to a visitor, costly
  // for a script opening sessions in bulk.
  function leadingZeroBits(bytes) {
    var zeros = 0;
    for (var i = 0; i < bytes.length; i++) {
      if (bytes[i] === 0) { zeros += 8; continue; }
      return zeros + Math.clz32(bytes[i]) - 24;
    }
    return zeros;
  }

  function solveChallenge(challenge, bits) {
    var encoder = new TextEncoder();
    var next = 0;
    function batch() {
      var tries = [];
      for (var i = 0; i < 256; i++) {
        var nonce = (next++).toString(36);
        tries.push(crypto.subtle.digest("SHA-256", encoder.encode(challenge + ":" + nonce)).then(
          (function (n) { return function (digest) { return leadingZeroBits(new Uint8Array(digest)) >= bits ? n : null; }; })(nonce)));
      }
      return Promise.all(tries).then(function (found) {
        for (var j = 0; j < found.length; j++) if (found[j] !== null) return found[j];
        return batch();
      });
    }
    return batch();
  }

  // Resolves to a proof for POST /session, or null when the bridge asks for none.
  function sessionProof() {
    return api("GET", "/challenge").then(function (result) {
      if (!result.ok || !result.data) { var error = new Error("challenge " + result.status); error.result = result; throw error; }
      var c = result.data;
      state.config.proof_of_work_bits = c.bits || 0;
      if (!c.bits) return null;
      if (!(window.crypto && crypto.subtle)) throw new Error("WebCrypto is unavailable (the page is not served over HTTPS)");
      return solveChallenge(c.challenge, c.bits).then(function (nonce) { return { challenge: c.challenge, nonce: nonce }; });
    });
  }

  function postSession(proof) {
    var body = identityFields();
    if (proof) body.proof = proof;
    return api("POST", "/session", body);
  }

  // Make sure we have a token; create the visitor (or update name/e-mail) when needed.
  // Resolves true when ready; false after a refusal that was shown to the visitor.
  function ensureSession() {
    if (state.token && !state.identityDirty) return Promise.resolve(true);
    var hadToken = state.token;
    var proved = !hadToken && state.config.proof_of_work_bits > 0;
    var attempt = proved ? sessionProof().then(postSession) : postSession(null);
    return attempt.then(function (result) {
      // A new session (our token was forgotten, or the bridge has just started asking) needs a
      // proof: solve a challenge and ask once more.
      return result.status === 428 && !proved ? sessionProof().then(postSession) : result;
    }).then(function (result) {
      if (!result.ok) {
        if (result.status === 422 || result.status === 400) {
          showError(errorText(result, "Please check your name and e-mail."));
          return false;
        }
        var error = new Error("session " + result.status);
        error.result = result;
        throw error;
      }
      var data = result.data || {};
      var changed = data.token !== hadToken;
      state.token = data.token;
      state.visitorId = data.visitor_id;
      state.name = data.name || null;
      state.email = data.email || null;
      state.identityDirty = false;
      persist();
      if (changed) {
        // A new visitor: whatever was on screen belonged to the old one.
        resetTranscript();
        connect();
      }
      return true;
    });
  }

  function resetTranscript() {
    Object.keys(state.messages).forEach(function (id) {
      var row = state.messages[id].row;
      if (row && row.parentNode) row.parentNode.removeChild(row);
    });
    state.messages = {};
    state.applied = {};
    state.lastSeq = 0;
    state.readUpTo = null;
    state.lastReadSent = null;
    state.lastReadSeq = 0;
    place();
  }

  // --- Sending (a queue, so offline messages go out later with the same client_id) -------------
  function addPending(item) {
    var message = {
      id: null, cid: item.cid, from: "visitor", created: Date.now(),
      text: item.text || "", html: null, reply_to: item.reply_to || null,
      attachments: item.file ? [{ name: item.file.name || "file", size: item.file.size, mime: item.file.type, local: true }] : [],
    };
    state.pending[item.cid] = message;
    render(message);
    place();
    scrollToEnd();
  }

  function enqueue(item) {
    state.queue.push(item);
    addPending(item);
    persist();
    flush();
  }

  function scheduleFlush(ms) {
    clearTimeout(state.flushTimer);
    state.flushTimer = setTimeout(flush, ms);
  }

  function sendItem(item) {
    if (item.kind === "file") {
      var form = new FormData();
      form.append("client_id", item.cid);
      if (item.reply_to) form.append("reply_to", item.reply_to);
      form.append("file", item.file, item.file.name || "file");
      return api("POST", "/files", form, true);
    }
    var body = { client_id: item.cid, text: item.text };
    if (item.reply_to) body.reply_to = item.reply_to;
    return api("POST", "/messages", body);
  }

  function fail(item, message) {
    var pending = state.pending[item.cid];
    if (pending) { pending.failed = true; render(pending); }
    showError(message);
  }

  async function flush() {
    if (state.flushing) return;
    if (state.holdUntil > Date.now()) return; // a retry is already scheduled
    state.flushing = true;
    try {
      while (state.queue.length) {
        var item = state.queue[0];
        var result;
        try {
          if (!(await ensureSession())) return; // refused (e.g. bad e-mail): wait for the visitor
          result = await sendItem(item);
        } catch (e) {
          // Offline, the bridge unreachable or refusing for now: keep the queue, retry later.
          if (e && e.result) result = e.result;
          else {
            showError("You seem to be offline. Your message will be sent when the connection is back.");
            scheduleFlush(state.backoff);
            state.backoff = Math.min(state.backoff * 2, 30000);
            return;
          }
        }
        if (result.ok) {
          state.queue.shift();
          state.backoff = 1000;
          persist();
          var data = result.data || {};
          var message = adopt(data.id, data.seq);
          if (message) { render(message); place(); }
          hideError();
          continue;
        }
        if (result.status === 401) {
          // The bridge no longer knows our token: start over as a new visitor, keep the queue.
          state.token = null;
          persist();
          continue;
        }
        if (result.status === 429 || result.status === 428 || result.status >= 500) {
          var fallback = result.status === 429 ? "You are sending messages too quickly." : "The chat is temporarily unavailable; retrying\u2026";
          showError(errorText(result, fallback));
          var wait = result.retryAfter ? result.retryAfter * 1000 : state.backoff;
          state.backoff = Math.min(state.backoff * 2, 30000);
          state.holdUntil = Date.now() + wait;
          scheduleFlush(wait);
          return;
        }
        // Anything else will not work by retrying (too large, empty, invalid): drop it.
        state.queue.shift();
        persist();
        fail(item, errorText(result, "The message could not be sent."));
      }
    } finally {
      state.flushing = false;
    }
  }

  function submit() {
    var text = ui.input.value;
    if (state.editing) {
      saveEdit(state.editing, text);
      return;
    }
    if (!text.trim()) { flush(); return; }
    var item = { kind: "text", cid: randomId(), text: text, reply_to: state.replyTo };
    ui.input.value = "";
    autosize();
    stopReply();
    stopTyping();
    enqueue(item);
  }

  function attachFile(file) {
    var limit = state.config.max_upload_bytes;
    if (limit && file.size > limit) {
      showError("The file is too large: the limit is " + humanSize(limit) + " (" + limit + " bytes).");
      return;
    }
    if (file.size === 0) { showError("The file is empty."); return; }
    var item = { kind: "file", cid: randomId(), file: file, reply_to: state.replyTo };
    stopReply();
    enqueue(item);
  }

  // --- Reply, edit, delete ------------------------------------------------------------------------
  function startReply(id) {
    stopEdit();
    state.replyTo = id;
    ui.replyText.textContent = snippet(findMessage(id));
    ui.replyPreview.hidden = false;
    ui.input.focus();
  }

  function stopReply() {
    state.replyTo = null;
    ui.replyPreview.hidden = true;
    ui.replyText.textContent = "";
  }

  function startEdit(id) {
    var message = state.messages[id];
    if (!message || message.deleted) return;
    stopReply();
    state.editing = id;
    ui.input.value = message.text || "";
    autosize();
    ui.editPreview.hidden = false;
    ui.send.textContent = "Save";
    ui.input.focus();
  }

  function stopEdit() {
    if (!state.editing) return;
    state.editing = null;
    ui.editPreview.hidden = true;
    ui.send.textContent = "Send";
    ui.input.value = "";
    autosize();
  }

  function saveEdit(id, text) {
    if (!text.trim()) { showError("The new text is empty; delete the message instead."); return; }
    var message = state.messages[id];
    if (message && message.text === text) { stopEdit(); return; }
    api("PATCH", "/messages/" + encodeURIComponent(id), { text: text }).then(function (result) {
      if (!result.ok) { showError(errorText(result, "The message could not be edited.")); return; }
      hideError();
      stopEdit();
      apply({ type: "edit", id: id, text: text });
    }, function () {
      showError("You seem to be offline; the change was not saved.");
    });
  }

  function deleteMessage(id) {
    api("DELETE", "/messages/" + encodeURIComponent(id)).then(function (result) {
      if (!result.ok) { showError(errorText(result, "The message could not be deleted.")); return; }
      hideError();
      apply({ type: "delete", id: id });
    }, function () {
      showError("You seem to be offline; the message was not deleted.");
    });
  }

  // --- Reactions --------------------------------------------------------------------------------
  // The visitor reacts to an agent's message (`key`), or takes the reaction back (`null`).
  function react(id, key) {
    var path = "/messages/" + encodeURIComponent(id) + "/reaction";
    var request = key ? api("PUT", path, { key: key }) : api("DELETE", path);
    request.then(function (result) {
      if (!result.ok) { showError(errorText(result, "The reaction could not be sent.")); render(state.messages[id]); return; }
      hideError();
      apply({ type: "reaction", id: id, from: "visitor", key: result.data ? result.data.key : key });
    }, function () {
      showError("You seem to be offline; the reaction was not sent.");
    });
  }

  // --- Typing -----------------------------------------------------------------------------------
  function startTyping() {
    if (!state.token) return; // no conversation yet: nobody to tell
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, 4000);
    if (state.typingActive) return;
    state.typingActive = true;
    api("POST", "/typing", { active: true }).catch(function () {});
  }

  function stopTyping() {
    clearTimeout(state.typingTimer);
    if (!state.typingActive) return;
    state.typingActive = false;
    api("POST", "/typing", { active: false }).catch(function () {});
  }

  // --- Live events ---------------------------------------------------------------------------------
  function connect() {
    if (state.es) { state.es.close(); state.es = null; }
    if (!state.token || typeof EventSource === "undefined") return;
    var url = API + "/events?token=" + encodeURIComponent(state.token) + "&after=" + state.lastSeq;
    var es = new EventSource(url);
    state.es = es;
    es.onopen = function () { state.esBackoff = 1000; };
    es.onmessage = function (e) {
      var event;
      try { event = JSON.parse(e.data); } catch (err) { return; }
      apply(event);
    };
    es.onerror = function () {
      // EventSource retries network errors itself (with Last-Event-ID). When it gives up
      // (an HTTP error such as 401), check the session and reconnect ourselves.
      if (es.readyState !== EventSource.CLOSED || state.es !== es) return;
      state.es = null;
      var delay = state.esBackoff;
      state.esBackoff = Math.min(state.esBackoff * 2, 30000);
      setTimeout(function () {
        api("GET", "/messages?after=" + state.lastSeq + "&limit=1").then(function (result) {
          if (result.status === 401) { state.token = null; persist(); return ensureSession(); }
          return true;
        }).then(function () { if (!state.es) connect(); }, function () { if (!state.es) connect(); });
      }, delay);
    };
  }

  // --- Wiring -------------------------------------------------------------------------------------
  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight, 120) + "px";
  }

  function wire() {
    ui.launcher.addEventListener("click", function () { setOpen(!state.open); });
    ui.close.addEventListener("click", function () { setOpen(false); });
    ui.errorClose.addEventListener("click", hideError);
    ui.replyCancel.addEventListener("click", stopReply);
    ui.editCancel.addEventListener("click", stopEdit);
    ui.attachButton.addEventListener("click", function () { ui.attach.click(); });
    ui.attach.addEventListener("change", function () {
      var file = ui.attach.files && ui.attach.files[0];
      if (file) attachFile(file);
      ui.attach.value = "";
    });
    ui.form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
    ui.input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
      else if (e.key === "Escape") { stopEdit(); stopReply(); }
    });
    ui.input.addEventListener("input", function () {
      autosize();
      if (ui.input.value) startTyping(); else stopTyping();
    });
    ui.offlineForm.addEventListener("submit", function (e) { e.preventDefault(); saveOfflineEmail(); });
    ui.name.addEventListener("input", function () { state.identityDirty = true; });
    ui.email.addEventListener("input", function () { state.identityDirty = true; });
    window.addEventListener("online", function () { state.backoff = 1000; state.holdUntil = 0; flush(); if (!state.es) connect(); });
    document.addEventListener("visibilitychange", markRead);
  }

  // "10 minutes", "2 hours", "1 day".
  function humanWait(secs) {
    function n(count, one) { return count + " " + one + (count === 1 ? "" : "s"); }
    if (secs < 3600) return n(Math.max(1, Math.round(secs / 60)), "minute");
    if (secs < 86400) return n(Math.round(secs / 3600), "hour");
    return n(Math.round(secs / 86400), "day");
  }

  // When the team opens next, in the visitor's own time zone and language.
  function when(ms) {
    var at = new Date(ms);
    try {
      var sameDay = at.toDateString() === new Date().toDateString();
      return new Intl.DateTimeFormat(undefined, sameDay ? { hour: "2-digit", minute: "2-digit" } : { weekday: "long", hour: "2-digit", minute: "2-digit" }).format(at);
    } catch (e) {
      return at.toLocaleString();
    }
  }

  function showAvailability() {
    var a = state.config.availability;
    ui.status.hidden = !a;
    ui.offline.hidden = !a || a.open_now;
    if (!a) return;
    var parts = [a.open_now ? "We are online" : "We are away right now"];
    if (!a.open_now && typeof a.next_open_ms === "number") parts.push("back " + when(a.next_open_ms));
    if (typeof a.usually_within_secs === "number") parts.push("usually answers within " + humanWait(a.usually_within_secs));
    ui.status.textContent = parts.join(" \u00b7 ");
    ui.status.className = "status-line " + (a.open_now ? "online" : "away");
    ui.status.setAttribute("data-open", a.open_now ? "true" : "false");
    if (typeof a.next_open_ms === "number") ui.status.setAttribute("data-next-open", String(a.next_open_ms));
    else ui.status.removeAttribute("data-next-open");
    ui.offlineForm.hidden = !!state.email;
    ui.offlineSaved.hidden = !state.email;
    ui.offlineSaved.textContent = state.email ? "We will answer at " + state.email + "." : "";
  }

  function saveOfflineEmail() {
    var email = ui.offlineEmail.value.trim();
    if (!email || !ui.offlineEmail.checkValidity()) {
      showError("Please enter a valid e-mail address.");
      ui.offlineEmail.focus();
      return;
    }
    ui.email.value = email;
    state.identityDirty = true;
    ensureSession().then(function (ready) {
      if (!ready) return;
      hideError();
      showAvailability();
    }, function () {
      showError("You seem to be offline; your e-mail was not saved.");
    });
  }

  function applyConfig(config) {
    if (!config || typeof config !== "object") return;
    if (typeof config.site_name === "string") state.config.site_name = config.site_name;
    if (typeof config.greeting === "string") state.config.greeting = config.greeting;
    if (typeof config.max_upload_bytes === "number") state.config.max_upload_bytes = config.max_upload_bytes;
    if (typeof config.proof_of_work_bits === "number") state.config.proof_of_work_bits = config.proof_of_work_bits;
    ui.title.textContent = state.config.site_name;
    ui.greeting.textContent = state.config.greeting || "";
    ui.greeting.hidden = !state.config.greeting;
    if (typeof config.language === "string") ui.greeting.setAttribute("lang", config.language);
    else ui.greeting.removeAttribute("lang");
    state.config.availability = config.availability && typeof config.availability === "object" ? config.availability : null;
    showAvailability();
  }

  function init() {
    build();
    var languages = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""]).join(",");
    api("GET", "/config?lang=" + encodeURIComponent(languages)).then(function (result) { if (result.ok) applyConfig(result.data); }, function () {});
    if (state.name) ui.name.value = state.name;
    if (state.email) { ui.email.value = state.email; ui.offlineEmail.value = state.email; }
    // Messages left unsent by an earlier page view go out now (same client ids: no duplicates).
    (Array.isArray(saved.queue) ? saved.queue : []).forEach(function (item) {
      if (!item || typeof item.cid !== "string" || typeof item.text !== "string") return;
      var queued = { kind: "text", cid: item.cid, text: item.text, reply_to: item.reply_to || null };
      state.queue.push(queued);
      addPending(queued);
    });
    updateIdentity();
    updateBadge();
    // A returning visitor gets their history and live events right away; a new one only gets a
    // session (and a stored record) when they first write.
    if (state.token) connect();
    if (state.queue.length) flush();
  }

  if (document.body) init();
  else document.addEventListener("DOMContentLoaded", init);
})();
