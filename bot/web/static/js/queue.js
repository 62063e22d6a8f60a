// Keeps the queue current: polls the JSON endpoint and rebuilds the three lists (urgent flags,
// conversations waiting for a reply, other flags) and the navigation's waiting count, with
// textContent only (message bodies are never parsed as HTML).
(function () {
  "use strict";
  var root = document.getElementById("queue");
  if (!root) { return; }
  var endpoint = root.getAttribute("data-endpoint");
  var seconds = parseInt(root.getAttribute("data-poll-seconds"), 10) || 15;
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var lists = {
    urgent: document.getElementById("queue-urgent"),
    waiting: document.getElementById("queue-waiting"),
    others: document.getElementById("queue-list")
  };
  var sections = {
    urgent: document.getElementById("queue-urgent-section"),
    waiting: document.getElementById("queue-waiting-section"),
    others: document.getElementById("queue-others-section")
  };
  var counts = document.getElementById("queue-counts");
  var empty = document.getElementById("queue-empty");
  var updated = document.getElementById("queue-updated");
  var nav = document.getElementById("nav-waiting");

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function renderFlag(item, showsCoach) {
    var li = el("li", "queue-item queue-item--" + item.severity);
    li.setAttribute("data-flag-id", String(item.flag_id));
    var head = el("div", "queue-item__head");
    head.appendChild(el("span", "badge badge--" + item.severity, item.severity));
    var name = el("a", "queue-item__name", item.label);
    name.href = item.url;
    head.appendChild(name);
    if (item.state === "acknowledged") {
      head.appendChild(el("span", "badge badge--state", "acknowledged"));
    }
    if (item.waiting_label) {
      head.appendChild(el("span", "badge badge--waiting", item.waiting_label));
    }
    li.appendChild(head);
    var reason = item.reason_label + (item.occurrences > 1 ? " (" + item.occurrences + " times)" : "");
    li.appendChild(el("p", "queue-item__reason", reason));
    if (item.preview) {
      var preview = el("p", "queue-item__preview" + (item.preview_is_trigger ? " queue-item__preview--trigger" : ""));
      preview.appendChild(el("span", "visually-hidden",
        item.preview_is_trigger ? "The text that raised the flag, " : "Last message, "));
      var who = item.preview_is_trigger ? "Their words: " :
        (item.preview_direction === "in" ? "They said: " : "We sent: ");
      preview.appendChild(document.createTextNode(who + item.preview));
      li.appendChild(preview);
    } else {
      li.appendChild(el("p", "queue-item__preview hint", "No messages yet."));
    }
    var meta = el("p", "queue-item__meta", "Flagged ");
    var time = el("time", null, item.age);
    time.setAttribute("datetime", item.opened_at);
    meta.appendChild(time);
    if (showsCoach) {
      meta.appendChild(document.createTextNode(" · Coach: " + (item.coach || "nobody")));
    }
    meta.appendChild(document.createTextNode(" · "));
    var details = el("a", null, "Flag details");
    details.href = item.flag_url;
    meta.appendChild(details);
    li.appendChild(meta);
    return li;
  }

  function renderWaiting(w, showsCoach) {
    var li = el("li", "queue-item queue-item--waiting");
    li.setAttribute("data-message-id", String(w.message_id));
    var head = el("div", "queue-item__head");
    var name;
    if (w.url) {
      name = el("a", "queue-item__name", w.label);
      name.href = w.url;
    } else {
      name = el("span", "queue-item__name", w.label);
    }
    head.appendChild(name);
    head.appendChild(el("span", "badge badge--waiting", w.waiting_label));
    li.appendChild(head);
    var text = el("p", "queue-item__preview");
    text.appendChild(el("span", "visually-hidden", "Their text, "));
    text.appendChild(document.createTextNode(w.first_line));
    if (w.texts > 1) {
      text.appendChild(document.createTextNode(" "));
      text.appendChild(el("span", "hint", "(+" + (w.texts - 1) + " more)"));
    }
    li.appendChild(text);
    var actions = el("div", "queue-item__actions");
    if (showsCoach && w.participant_id) {
      actions.appendChild(el("p", "queue-item__meta", "Coach: " + (w.coach || "nobody")));
    }
    var form = el("form");
    form.method = "post";
    form.action = "/inbox/" + w.message_id + "/no-reply-needed";
    var token = el("input");
    token.type = "hidden";
    token.name = "csrf_token";
    token.value = csrf;
    form.appendChild(token);
    var button = el("button", "button button--quiet button--small", "No reply needed");
    button.type = "submit";
    form.appendChild(button);
    actions.appendChild(form);
    li.appendChild(actions);
    return li;
  }

  function fill(key, nodes) {
    var fragment = document.createDocumentFragment();
    nodes.forEach(function (node) { fragment.appendChild(node); });
    lists[key].replaceChildren(fragment);
    sections[key].hidden = nodes.length === 0;
  }

  function render(data) {
    // Do not yank the list from under someone who is tabbing through it.
    if (root.contains(document.activeElement) && document.activeElement !== root) { return; }
    var showsCoach = data.shows_coach;
    fill("urgent", data.items.filter(function (i) { return i.urgent; })
      .map(function (i) { return renderFlag(i, showsCoach); }));
    fill("waiting", data.waiting.map(function (w) { return renderWaiting(w, showsCoach); }));
    fill("others", data.items.filter(function (i) { return !i.urgent; })
      .map(function (i) { return renderFlag(i, showsCoach); }));
    var countItems = document.createDocumentFragment();
    var waitingLi = el("li", null, "Waiting for a reply: ");
    var waitingNumber = el("strong", null, String(data.waiting_count));
    waitingNumber.id = "queue-waiting-total";
    waitingLi.appendChild(waitingNumber);
    countItems.appendChild(waitingLi);
    var total = el("li", null, "Open flags: ");
    var totalNumber = el("strong", null, String(data.total));
    totalNumber.id = "queue-total";
    total.appendChild(totalNumber);
    countItems.appendChild(total);
    data.counts.forEach(function (c) {
      var li = el("li", null, c.label + ": ");
      li.appendChild(el("strong", null, String(c.count)));
      countItems.appendChild(li);
    });
    counts.replaceChildren(countItems);
    empty.hidden = data.items.length > 0 || data.waiting.length > 0;
    if (nav) {
      nav.replaceChildren(el("span", "visually-hidden", ", waiting for a reply: "),
        document.createTextNode(String(data.waiting_count)));
      nav.classList.toggle("nav-count--zero", data.waiting_count === 0);
    }
    updated.textContent = "Updated " + new Date().toLocaleTimeString([], {hour: "numeric", minute: "2-digit"}) + ".";
  }

  function poll() {
    fetch(endpoint, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) { if (data) { render(data); } })
      .catch(function () { updated.textContent = "Could not update; retrying."; })
      .finally(function () { window.setTimeout(poll, seconds * 1000); });
  }

  window.setTimeout(poll, seconds * 1000);
}());
