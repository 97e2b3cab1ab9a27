// Swap in the fresh page body from the server-sent event stream; reconnect
// after a pause if it drops, or reload (to the login page) when the session
// has ended. No framework, no build step.
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  function connect() {
    var es = new EventSource("/events");
    es.addEventListener("body", function (e) {
      var flash = document.getElementById("flash");
      live.innerHTML = e.data;
      if (flash && !document.getElementById("flash")) live.prepend(flash);
    });
    es.onerror = function () {
      es.close();
      setTimeout(function () {
        fetch("/body", { credentials: "same-origin", cache: "no-store" }).then(function (r) {
          if (r.status === 401) location.reload(); // logged out or expired
          else connect();
        }, function () { setTimeout(connect, 2000); });
      }, 2000);
    };
  }
  connect();
})();
