(function () {
  var field = document.getElementById("timezone");
  if (!field || field.value) { return; }
  try { field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* the server uses its default */ }
})();
