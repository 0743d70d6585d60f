// Progressive enhancement only: a pressed submit button is disabled, so a double click
// does not post an action twice. Pages work the same without this script.
document.addEventListener("submit", function (event) {
  var button = event.submitter;
  if (button) {
    setTimeout(function () { button.disabled = true; }, 0);
  }
});
