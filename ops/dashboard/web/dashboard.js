// Swap in the fresh page body from the server-sent event stream; reconnect
// after a pause if it drops. No framework, no build step.
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
      setTimeout(connect, 2000);
    };
  }
  connect();
})();
