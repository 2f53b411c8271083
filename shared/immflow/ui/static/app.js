// Live run list: polls the same list's rows every few seconds and swaps them in, so new runs and
// state changes appear without a reload. No framework: the server renders the rows.
(function () {
  "use strict";
  var table = document.getElementById("runs");
  if (!table) return;
  var status = document.getElementById("live-status");
  var url = table.getAttribute("data-live");
  var period = 2000;

  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        table.tBodies[0].innerHTML = data.rows;
        Object.keys(data.counts).forEach(function (state) {
          var cell = document.querySelector('[data-count="' + state + '"]');
          if (cell) cell.textContent = data.counts[state];
        });
        if (status) status.textContent = "updated " + new Date().toLocaleTimeString();
      })
      .catch(function (error) {
        if (status) status.textContent = "the dashboard cannot reach the ledger: " + error.message;
      })
      .finally(function () {
        window.setTimeout(refresh, period);
      });
  }
  window.setTimeout(refresh, period);
})();
