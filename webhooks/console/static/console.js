// Refresh a page's #live section every data-refresh seconds (fetch + replace); the page works without it.
(function () {
  var live = document.getElementById("live");
  if (!live || !window.fetch || !window.DOMParser) return;
  var seconds = parseInt(live.getAttribute("data-refresh"), 10) || 15;
  setInterval(function () {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) live.innerHTML = fresh.innerHTML;
      })
      .catch(function () {});
  }, seconds * 1000);
})();
