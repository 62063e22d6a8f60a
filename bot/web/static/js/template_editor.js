// Live preview for the message editor: posts the draft to the JSON preview endpoint and shows
// the rendered text, its SMS segment count and any sensitive-word warning. Text is set with
// textContent only, never as HTML.
(function () {
  "use strict";
  var editor = document.getElementById("editor");
  var textarea = document.getElementById("body");
  if (!editor || !textarea) { return; }
  var url = editor.getAttribute("data-preview-url");
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  var token = tokenMeta ? tokenMeta.getAttribute("content") : "";
  var out = {
    text: document.getElementById("preview-text"),
    error: document.getElementById("preview-error"),
    segments: document.getElementById("preview-segments"),
    sensitive: document.getElementById("preview-sensitive"),
    placeNote: document.getElementById("preview-place-note")
  };
  var place = document.getElementById("preview-place");
  var timer = null;
  var latest = 0;

  function show(result) {
    if (result.ok) {
      out.text.textContent = result.text;
      out.error.hidden = true;
      out.error.textContent = "";
      var s = result.characters + " characters · " + result.encoding + " · " +
        result.segments + (result.segments === 1 ? " segment" : " segments");
      if (result.non_gsm_chars.length) {
        s += " (because of " + result.non_gsm_chars.join(" ") + ")";
      }
      out.segments.textContent = s;
    } else {
      out.text.textContent = "";
      var e = result.error;
      out.error.textContent = (e.line ? "Line " + e.line + ", column " + e.column + ": " : "") + e.reason;
      out.error.hidden = false;
      out.segments.textContent = "";
    }
    if (out.placeNote) {
      out.placeNote.textContent = result.place_note || "";
      out.placeNote.hidden = !result.place_note;
    }
    if (result.sensitive_terms.length) {
      out.sensitive.textContent = "Careful: \u201c" + result.sensitive_terms.join("\u201d, \u201c") +
        "\u201d could tell whoever sees this phone about the person's situation. Texts should stay neutral.";
      out.sensitive.hidden = false;
    } else {
      out.sensitive.hidden = true;
      out.sensitive.textContent = "";
    }
  }

  function refresh() {
    var mine = ++latest;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify(place ? { body: textarea.value, place: place.value } : { body: textarea.value })
    }).then(function (response) {
      if (!response.ok) { throw new Error("preview failed: " + response.status); }
      return response.json();
    }).then(function (result) {
      if (mine === latest) { show(result); }
    }).catch(function () {
      out.segments.textContent = "Preview unavailable right now; saving still checks the text.";
    });
  }

  function later() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(refresh, 250);
  }
  textarea.addEventListener("input", later);
  if (place) { place.addEventListener("input", later); }
})();
