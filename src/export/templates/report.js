document.documentElement.dataset.js = "on";
function costbenchCount() {
  var all = document.querySelectorAll("details.t"), shown = 0;
  all.forEach(function (t) { if (getComputedStyle(t).display !== "none") shown += 1; });
  document.getElementById("shown").textContent = "showing " + shown + " of " + all.length + " samples";
}
document.addEventListener("change", function (e) { if (e.target.name === "f") costbenchCount(); });
document.addEventListener("DOMContentLoaded", costbenchCount);
