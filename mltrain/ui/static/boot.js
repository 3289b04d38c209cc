"use strict";
// Loaded first: a run page starts fetching its series (the largest answer) while the other scripts load
// ("not found" asked for as a 200, as every page asks: see common.js).
(function prefetch() {
  const m = location.pathname.match(/^\/runs\/([^/]+)$/);
  if (m) {
    const series = fetch(`/api/runs/${m[1]}/series?fields=step,value`, { headers: { "X-Soft-Not-Found": "1" } });
    series.catch(() => {});  // a failure is reported where the answer is read
    window.mltrainPrefetch = { id: m[1], series };
  }
})();
