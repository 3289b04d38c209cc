"use strict";
// Loaded first: a run page starts fetching its series (the largest answer) while the other scripts load.
(function prefetch() {
  const m = location.pathname.match(/^\/runs\/([^/]+)$/);
  if (m) window.mltrainPrefetch = { id: m[1], series: fetch(`/api/runs/${m[1]}/series?fields=step,value`) };
})();
