// fedledger explorer: follow the federation while it runs. Polls /api/federation and reloads the
// page when what it shows has changed (a new round, a new verdict). No framework, no other request.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-poll");
  var shown = body.getAttribute("data-version");
  var live = document.getElementById("live");
  var every = 3000;
  function poll() {
    fetch(url, { cache: "no-store", headers: { accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (fed) {
        if (live) {
          live.classList.remove("stale");
          live.textContent = "round " + fed.current_round + (fed.auditing ? " · auditing round " + fed.auditing : "");
        }
        if (String(fed.version) !== shown && !document.querySelector("details[open]")) {
          window.location.reload();
          return;
        }
        window.setTimeout(poll, every);
      })
      .catch(function () {
        if (live) { live.classList.add("stale"); live.textContent = "explorer unreachable"; }
        window.setTimeout(poll, every * 2);
      });
  }
  window.setTimeout(poll, every);
})();
