// Keeps the flagged queue current: polls the JSON endpoint and rebuilds the list with
// textContent only (message bodies are never parsed as HTML).
(function () {
  "use strict";
  var root = document.getElementById("queue");
  if (!root) { return; }
  var endpoint = root.getAttribute("data-endpoint");
  var seconds = parseInt(root.getAttribute("data-poll-seconds"), 10) || 15;
  var list = document.getElementById("queue-list");
  var counts = document.getElementById("queue-counts");
  var empty = document.getElementById("queue-empty");
  var updated = document.getElementById("queue-updated");

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function renderItem(item) {
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
    li.appendChild(head);
    var reason = item.reason_label + (item.occurrences > 1 ? " (" + item.occurrences + " times)" : "");
    li.appendChild(el("p", "queue-item__reason", reason));
    var meta = el("p", "queue-item__meta", "Flagged ");
    var time = el("time", null, item.age);
    time.setAttribute("datetime", item.opened_at);
    meta.appendChild(time);
    meta.appendChild(document.createTextNode(" · "));
    var details = el("a", null, "Flag details");
    details.href = item.flag_url;
    meta.appendChild(details);
    li.appendChild(meta);
    if (item.preview) {
      var preview = el("p", "queue-item__preview");
      preview.appendChild(el("span", "visually-hidden", "Last message, "));
      var who = item.preview_direction === "in" ? "They said: " : "We sent: ";
      preview.appendChild(document.createTextNode(who + item.preview));
      li.appendChild(preview);
    } else {
      li.appendChild(el("p", "queue-item__preview hint", "No messages yet."));
    }
    return li;
  }

  function render(data) {
    // Do not yank the list from under someone who is tabbing through it.
    if (list.contains(document.activeElement)) { return; }
    var fragment = document.createDocumentFragment();
    data.items.forEach(function (item) { fragment.appendChild(renderItem(item)); });
    list.replaceChildren(fragment);
    var countItems = document.createDocumentFragment();
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
    empty.hidden = data.items.length > 0;
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
