// Shows times in the browser's zone: if the page was rendered without ?tz=, reload with
// the zone the browser reports. Without JavaScript the zone form still works.
(function () {
  var input = document.querySelector('[data-detect-zone]');
  if (!input) return;
  var params = new URLSearchParams(window.location.search);
  if (params.has('tz')) return;
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && zone !== input.value) {
      params.set('tz', zone);
      window.location.replace(window.location.pathname + '?' + params.toString());
    }
  } catch (e) { /* keep the server's choice */ }
})();
