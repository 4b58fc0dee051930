// Small behaviours shared by every console page (no framework; htmx does partial updates).
(function () {
  "use strict";
  const root = document.documentElement;

  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-theme-toggle],[data-toggle-menu],[data-copy],[data-fill]");
    if (!target) return;
    if (target.hasAttribute("data-theme-toggle")) {
      const dark = root.dataset.theme
        ? root.dataset.theme === "dark"
        : window.matchMedia("(prefers-color-scheme: dark)").matches;
      root.dataset.theme = dark ? "light" : "dark";
      localStorage.setItem("theme", root.dataset.theme);
    } else if (target.hasAttribute("data-toggle-menu")) {
      const sidebar = document.getElementById("sidebar");
      const open = sidebar.classList.toggle("open");
      target.setAttribute("aria-expanded", String(open));
    } else if (target.hasAttribute("data-copy")) {
      const msg = target.closest(".msg");
      const pre = target.closest("pre");
      const text = pre ? pre.querySelector("code").innerText : msg.querySelector(".bubble").innerText;
      navigator.clipboard && navigator.clipboard.writeText(text);
      const label = target.textContent;
      target.textContent = "Copied";
      setTimeout(() => { target.textContent = label; }, 1200);
    } else if (target.hasAttribute("data-fill")) {
      const form = target.closest("form") || document;
      const box = form.querySelector("textarea");
      if (box) { box.value = target.dataset.fill; box.focus(); }
    }
  });

  document.addEventListener("change", (event) => {
    if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
  });

  // A copy button on every code block of rendered answers.
  function addCopyButtons(scope) {
    scope.querySelectorAll(".prose pre").forEach((pre) => {
      if (pre.querySelector(".copy-btn")) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-sm copy-btn";
      button.textContent = "Copy";
      button.setAttribute("data-copy", "");
      pre.appendChild(button);
    });
  }
  window.consoleUI = { addCopyButtons };
  document.addEventListener("DOMContentLoaded", () => addCopyButtons(document));
  document.addEventListener("htmx:afterSwap", (event) => addCopyButtons(event.target));
})();
