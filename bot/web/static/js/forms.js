// Small progressive enhancements for forms; everything works without this file.
(function () {
  "use strict";
  // <form data-confirm="Question?"> asks before submitting.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // Live segment count for the reply box (GSM-7 vs UCS-2, like messages/segments.py).
  var GSM = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXT = "^{}\\[~]|€\f";
  function segments(text) {
    var septets = 0, gsm = true, i, c;
    for (i = 0; i < text.length; i++) {
      c = text.charAt(i);
      if (GSM.indexOf(c) >= 0) { septets += 1; }
      else if (EXT.indexOf(c) >= 0) { septets += 2; }
      else { gsm = false; break; }
    }
    if (gsm) {
      if (septets === 0) { return {n: 0, enc: "GSM-7"}; }
      return {n: septets <= 160 ? 1 : Math.ceil(septets / 153), enc: "GSM-7"};
    }
    var units = text.length;  // JS strings are UTF-16 code units already
    return {n: units <= 70 ? 1 : Math.ceil(units / 67), enc: "UCS-2"};
  }
  Array.prototype.forEach.call(document.querySelectorAll("textarea[data-segments]"), function (box) {
    var out = document.getElementById(box.getAttribute("data-segments"));
    if (!out) { return; }
    function update() {
      var text = box.value.replace(/\r\n/g, "\n").trim();
      var s = segments(text);
      var note = s.enc === "UCS-2" ? " (accents or emoji make each text shorter)" : "";
      out.textContent = text.length + " characters, " + s.n + (s.n === 1 ? " text" : " texts") + note + ".";
    }
    box.addEventListener("input", update);
    update();
  });
}());
