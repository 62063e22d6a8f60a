// Phone simulator: show the newest message, as a phone does.
(function () {
  "use strict";
  var thread = document.getElementById("sim-thread");
  if (thread) { thread.scrollTop = thread.scrollHeight; }
})();
