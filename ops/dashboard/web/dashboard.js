// Swap in the fresh page body from the server-sent event stream; reconnect
// after a pause if it drops, or reload (to the login page) when the session
// has ended. No framework, no build step.
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  // A body that arrives while a pointer is pressed waits for its release:
  // swapped in between the press and the release, it would replace the
  // button under the pointer, and the click would be lost.
  var pressed = false, waiting = null;
  function swap(body) {
    var flash = document.getElementById("flash");
    live.innerHTML = body;
    if (flash && !document.getElementById("flash")) live.prepend(flash);
  }
  function release() {
    pressed = false;
    setTimeout(function () { // after the click the release makes
      if (pressed || waiting === null) return;
      var body = waiting;
      waiting = null;
      swap(body);
    }, 0);
  }
  document.addEventListener("pointerdown", function () { pressed = true; }, true);
  document.addEventListener("pointerup", release, true);
  document.addEventListener("pointercancel", release, true);
  function connect() {
    var es = new EventSource("/events");
    es.addEventListener("body", function (e) {
      if (pressed) {
        waiting = e.data;
      } else {
        waiting = null;
        swap(e.data);
      }
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
